"""Shared fixtures: an AWS-free environment, moto, an HTTP server on 127.0.0.1, handlers loaded fresh."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlpipe import targets
from pipeline_local.lambdas import LambdaContext, load_handler
from pipeline_local.runner import LOCAL_ENV, local_aws

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
        "SVC_HYPERPARAMETERS",
        "TIMEZONE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")  # tests that read metrics turn them back on
    for key, value in LOCAL_ENV.items():
        monkeypatch.setenv(key, value)
    targets.s3_client.cache_clear()


@pytest.fixture
def aws() -> Iterator[Any]:
    """moto for S3, Step Functions (executing ASL) and Lambda; the two buckets exist; yields an S3 client."""
    with local_aws():
        s3 = boto3.client("s3")
        for bucket in (ARTIFACTS, MODELS):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=MODELS, VersioningConfiguration={"Status": "Enabled"})
        yield s3
    targets.s3_client.cache_clear()


class RecordingHandler(SimpleHTTPRequestHandler):
    """Serves files and remembers each request path; routes in ``server.routes`` answer instead when present."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        server: Any = self.server
        server.requests.append(self.path)
        route = server.routes.get(self.path.split("?")[0])
        if route is not None:
            route(self)
            return
        super().do_GET()


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[Any]:
    """An HTTP server on 127.0.0.1 serving ``tmp_path/www``; ``.url(path)``, ``.requests``, ``.routes``."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "iris.data").write_bytes(SAMPLE.read_bytes())
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), partial(RecordingHandler, directory=str(root)))
    server.daemon_threads = True
    server.requests = []
    server.routes = {}
    server.root = root
    server.url = lambda path="/iris.data": f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


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
