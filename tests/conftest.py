"""Shared fixtures: an AWS-free environment, moto, an HTTP server on 127.0.0.1, handlers loaded fresh."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSResponse
from botocore.retries import standard
from s3transfer.utils import ChunksizeAdjuster

from mlpipe.storage import s3 as s3_storage
from pipeline_local.lambdas import LambdaContext, load_handler
from pipeline_local.runner import LOCAL_ENV, QuietHandler, local_aws, serve_directory

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "local" / "pipeline_local" / "data" / "iris.data"
ARTIFACTS = "mlpipe-test-artifacts"
MODELS = "mlpipe-test-models"


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach AWS: fake keys, a fixed region, no endpoint override (moto ignores requests to it)."""
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "SOURCE_URL",
        "ARTIFACT_ROOT",
        "PUBLISH_URI",
        "ESTIMATOR",
        "HYPERPARAMETERS",
        "DATASET_DESCRIPTION",
        "TIMEZONE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")  # tests that read metrics turn them back on
    # A source that hangs fails in half a second; two quick attempts per invocation, no waiting between.
    monkeypatch.setenv("SOURCE_CONNECT_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("SOURCE_READ_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("SOURCE_ATTEMPTS", "2")
    monkeypatch.setenv("SOURCE_BACKOFF_SECONDS", "0")
    for key, value in LOCAL_ENV.items():
        monkeypatch.setenv(key, value)


def _loopback(host: Any) -> bool:
    if host in (None, "localhost") or isinstance(host, bytes | int):
        return host is None or host == "localhost"
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _ip_literal(host: Any) -> bool:
    try:
        ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    return True


@pytest.fixture(autouse=True)
def _only_loopback_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sends anything off this machine: a connection or a name lookup for any other address fails the test.

    Code under test may catch the refusal (a lookup of lineage.json that finds nothing, say), so
    each one is also recorded, and the test fails at its end when there was any.
    """
    refused: list[str] = []
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            refused.append(f"connect to {address!r}")
            raise OSError(f"the tests' network guard refused a connection to {address!r}: only 127.0.0.1 is allowed")

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        connect(sock, address)

    def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return connect_ex(sock, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        flags = kwargs.get("flags", args[4] if len(args) > 4 else 0)
        if not (_loopback(host) or _ip_literal(host) or flags & socket.AI_NUMERICHOST):  # those send nothing
            refused.append(f"name lookup of {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"the tests' network guard refused to look up {host!r}")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield
    assert refused == [], f"the test tried to reach the network beyond 127.0.0.1: {refused}"


@pytest.fixture
def aws() -> Iterator[Any]:
    """moto for S3, Step Functions (executing ASL) and Lambda; the two buckets exist; yields an S3 client."""
    with local_aws():
        s3 = boto3.client("s3")
        for bucket in (ARTIFACTS, MODELS):
            s3.create_bucket(Bucket=bucket)
        for bucket in (ARTIFACTS, MODELS):  # versions count every write: "nothing overwritten" is checkable
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        yield s3


SMALL_PART_BYTES = 256 * 1024


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    """stream_write's managed transfer with 256 KiB parts, so a body of a few MB goes up in several parts.

    Real S3 takes parts of at least 5 MiB but the last, and s3transfer raises a smaller part size to
    that: both checks (moto's and s3transfer's ChunksizeAdjuster) are lowered to 256 KiB here.
    """
    from moto.s3 import models  # noqa: PLC0415 - moto internals, ~2 s to import: lazy

    config = TransferConfig(multipart_threshold=SMALL_PART_BYTES, multipart_chunksize=SMALL_PART_BYTES)
    config.max_in_memory_upload_chunks = 2
    monkeypatch.setattr(s3_storage, "stream_transfer", lambda: config)
    monkeypatch.setattr(models, "S3_UPLOAD_PART_MIN_SIZE", SMALL_PART_BYTES)
    monkeypatch.setattr(ChunksizeAdjuster, "adjust_chunksize", lambda self, chunksize, file_size=None: chunksize)
    return SMALL_PART_BYTES


class RecordingHandler(QuietHandler):
    """Serves files and remembers each request path; routes in ``server.routes`` answer instead when present."""

    def do_GET(self) -> None:
        server: Any = self.server
        server.requests.append(self.path)
        route = server.routes.get(self.path.split("?")[0])
        if route is not None:
            route(self)
            return
        super().do_GET()

    def do_HEAD(self) -> None:
        """A plan's HEAD (the source's version): routed like a GET, never recorded in ``requests``."""
        server: Any = self.server
        route = server.routes.get(self.path.split("?")[0])
        if route is not None:
            route(self)
            return
        super().do_HEAD()


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[Any]:
    """An HTTP server on 127.0.0.1 serving ``tmp_path/www``; ``.url(path)``, ``.requests``, ``.routes``."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "iris.data").write_bytes(SAMPLE.read_bytes())
    with serve_directory(root, RecordingHandler) as server:
        recording: Any = server
        recording.requests = []
        recording.routes = {}
        recording.root = root
        recording.url = lambda path="/iris.data": f"http://127.0.0.1:{server.server_address[1]}{path}"
        yield recording


@pytest.fixture
def invoke() -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    """Call a function's real handler (loaded now, so it reads the current environment)."""

    def call(name: str, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = load_handler(name)(event, LambdaContext(name))
        return result

    return call


def s3_keys(s3: Any, bucket: str) -> list[str]:
    """The keys of the current objects in ``bucket``, sorted."""
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def s3_versions(s3: Any, bucket: str, key: str) -> int:
    """How many versions of ``key`` were ever written (the models bucket is versioned)."""
    return len([v for v in s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", []) if v["Key"] == key])


def stores_empty(s3: Any) -> dict[str, list[str]]:
    """Every object version and delete marker ever written to the two test buckets (empty dict lists = nothing)."""
    found = {}
    for bucket in (ARTIFACTS, MODELS):
        listing = s3.list_object_versions(Bucket=bucket)
        found[bucket] = sorted(v["Key"] for v in listing.get("Versions", []) + listing.get("DeleteMarkers", []))
    return found


NOTHING_WRITTEN = {ARTIFACTS: [], MODELS: []}


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


class S3Faults:
    """Answers chosen S3 operations with errors instead of moto (which then never sees the request)."""

    def __init__(self) -> None:
        self.plans: dict[str, list[tuple[int, str]]] = {}
        self.always: dict[str, tuple[int, str]] = {}
        self.calls: dict[str, int] = {}
        self.buckets: dict[str, str] = {}

    def fail(
        self, operation: str, *errors: tuple[int, str], forever: tuple[int, str] | None = None, bucket: str = ""
    ) -> None:
        """The next calls of ``operation`` (on ``bucket``, if given) get ``errors`` in turn; with ``forever``, every
        call after them too."""
        self.plans[operation] = list(errors)
        self.buckets[operation] = bucket
        if forever:
            self.always[operation] = forever

    def answer(self, request: Any, event_name: str) -> Any:
        """An error response for this request, or None to let moto answer."""
        service, operation = event_name.split(".")[1:3]
        if service != "s3" or self.buckets.get(operation, "") not in request.url:
            return None
        self.calls[operation] = self.calls.get(operation, 0) + 1
        plan = self.plans.get(operation)
        error = plan.pop(0) if plan else self.always.get(operation)
        if error is None:
            return None
        status, code = error
        body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>injected</Message></Error>"
        return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Body(body.encode()))


@pytest.fixture
def s3_faults(aws: Any, monkeypatch: pytest.MonkeyPatch) -> S3Faults:
    """Inject S3 errors (the SDK's standard retry mode still applies; its backoff is made instant).

    botocore calls every ``before-send`` handler, so a response returned beside moto's would not stop
    moto from applying the request: the faults are answered from inside moto's stubber instead.
    """
    from moto.core.botocore_stubber import BotocoreStubber  # noqa: PLC0415 - moto internals, ~2 s to import: lazy

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)
    faults = S3Faults()
    original = BotocoreStubber.__call__

    def call(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        return faults.answer(request, event_name) or original(self, event_name, request, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", call)
    return faults
