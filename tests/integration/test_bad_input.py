"""Bad input: every case fails with a named error saying what and where, and leaves nothing at any output.

Source cases run twice: through the download handler, and through the real ASL with the local
runner (so the error the state machine sees, its Retry and the summary are checked too).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from mlpipe import exceptions
from pipeline_local.runner import LocalPipeline
from tests.conftest import ARTIFACTS, MODELS, NOTHING_WRITTEN, SAMPLE, stores_empty
from tests.integration.conftest import DATASET_KEY, DATE, METRICS_KEY, MODEL_KEY, PUBLISHED_KEY, states

Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]
DATASET = f"s3://{ARTIFACTS}/{DATASET_KEY}"
IRIS = SAMPLE.read_bytes()
ROWS = IRIS.decode().splitlines()


def respond(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Callable[[Any], None]:
    def route(handler: Any) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        if "Content-Length" not in (headers or {}):
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return route


def hang(handler: Any) -> None:
    time.sleep(3)  # longer than the 0.5 s read timeout the tests configure


def endless(handler: Any) -> None:
    """A body with no announced length that never ends; counts what it managed to send."""
    handler.send_response(200)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    chunk = ("\n".join(ROWS[:50]) + "\n").encode()
    try:
        while handler.server.sent_bytes < 50_000_000:
            handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            handler.server.sent_bytes += len(chunk)
    except OSError:
        pass


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Case:
    error: type[Exception]
    fragments: tuple[str, ...]
    route: Callable[[Any], None] | None = None
    url: str | None = None


SOURCE_CASES = {
    "http-404": Case(
        exceptions.SourceNotReadyError, ("HTTP 404", "not there (yet)", "SourceWaitSeconds"), respond(404)
    ),
    "http-403": Case(exceptions.SourceRejectedError, ("HTTP 403", "publicly readable"), respond(403)),
    "http-500": Case(exceptions.SourceUnavailableError, ("HTTP 500",), respond(500)),
    "http-503": Case(exceptions.SourceUnavailableError, ("HTTP 503",), respond(503)),
    "connection-refused": Case(exceptions.SourceUnavailableError, ("did not answer",), url="refused"),
    "timeout": Case(exceptions.SourceUnavailableError, ("did not answer", "timed out"), hang),
    "redirect-loop": Case(
        exceptions.SourceRejectedError, ("redirects in a loop",), respond(302, headers={"Location": "/data"})
    ),
    "redirect-to-file": Case(
        exceptions.SourceRejectedError,
        ("file:///etc/passwd", "not an HTTP URL"),
        respond(301, headers={"Location": "file:///etc/passwd"}),
    ),
    "empty-body": Case(exceptions.InvalidDatasetError, ("dataset is empty",), respond(200, b"")),
    "html-page": Case(
        exceptions.InvalidDatasetError,
        ("line 1, column 1", "HTML page"),
        respond(200, b"<!DOCTYPE html>\n<html><body>Moved</body></html>\n"),
    ),
    "binary-garbage": Case(
        exceptions.InvalidDatasetError, ("line 1", "binary data"), respond(200, bytes(range(256)) * 40)
    ),
    "too-large-declared": Case(
        exceptions.SourceTooLargeError,
        ("announces 200000 bytes", "max_source_bytes"),
        respond(200, IRIS[:10], {"Content-Length": "200000"}),
    ),
    "not-the-gzip-it-claims": Case(
        exceptions.SourceRejectedError,
        ("cannot be decoded",),
        respond(200, b"plain text", {"Content-Encoding": "gzip"}),
    ),
    "too-large-streamed": Case(exceptions.SourceTooLargeError, ("more than the maximum of 100000", "stopped"), endless),
}


def csv_case(lines: list[str], error: type[Exception], *fragments: str) -> Case:
    return Case(error, fragments, respond(200, ("\n".join(lines) + "\n").encode()))


def replaced(line_no: int, text: str) -> list[str]:
    rows = list(ROWS[:150])
    rows[line_no - 1] = text
    return rows


CSV_CASES = {
    "wrong-column-count": csv_case(
        replaced(3, "4.7,3.2,1.3,Iris-setosa"),
        exceptions.InvalidDatasetError,
        "line 3",
        "expected 5 columns, as in the first row",
        "found 4",
    ),
    "malformed-quoting": csv_case(
        replaced(2, '4.9,"3.0"x,1.4,0.2,Iris-setosa'),
        exceptions.InvalidDatasetError,
        "line 2",
        "malformed CSV",
    ),
    "missing-feature": csv_case(
        replaced(7, "4.6,3.4,,0.3,Iris-setosa"),
        exceptions.InvalidDatasetError,
        "line 7, column 3",
        "missing value (empty) in column 'column_2'",
    ),
    "nan-feature": csv_case(
        replaced(60, "5.2,2.7,3.9,nan,Iris-versicolor"),
        exceptions.InvalidDatasetError,
        "line 60, column 4",
        "missing value (nan)",
    ),
    "infinite-feature": csv_case(
        replaced(61, "inf,2.0,3.5,1.0,Iris-versicolor"),
        exceptions.InvalidDatasetError,
        "line 61, column 1",
        "not a finite number",
    ),
    "a-label-too-rare-to-cross-validate": csv_case(
        replaced(149, "6.2,3.4,5.4,2.3,Iris-unknown"),
        exceptions.InvalidDatasetError,
        "class 'Iris-unknown' has 1 rows, fewer than the 5 folds",
    ),
    "only-one-class": csv_case(ROWS[:50], exceptions.InvalidDatasetError, "only one class ('Iris-setosa')"),
    "fewer-rows-than-folds": csv_case(
        ROWS[:3] + ROWS[50:53] + ROWS[100:103],
        exceptions.InvalidDatasetError,
        "has 3 rows, fewer than the 5 folds",
        "lower cv_folds",
    ),
}


@pytest.fixture
def serve(http_server: Any) -> Callable[[Case], str]:
    """Serve a case's route at /data and return the URL to use as the source."""
    http_server.sent_bytes = 0

    def url(case: Case) -> str:
        if case.url == "refused":
            return f"http://127.0.0.1:{closed_port()}/data"
        assert case.route is not None
        http_server.routes["/data"] = case.route
        return str(http_server.url("/data"))

    return url


def assert_error(error: BaseException, case: Case, *, where: str) -> None:
    assert type(error) is case.error
    for fragment in (*case.fragments, where):
        assert fragment in str(error)


@pytest.mark.parametrize("name", [*SOURCE_CASES, *CSV_CASES])
def test_download_handler_refuses_bad_source_and_writes_nothing(
    name: str, aws: Any, serve: Callable[[Case], str], invoke: Invoke, http_server: Any
) -> None:
    case = {**SOURCE_CASES, **CSV_CASES}[name]
    url = serve(case)
    event = {"run_date": DATE, "source_url": url, "dataset_uri": DATASET, "max_source_bytes": 100_000, "cv_folds": 5}
    with pytest.raises(exceptions.PipelineError) as raised:
        invoke("download", event)
    where = url if case.error is exceptions.InvalidDatasetError else url.rsplit("/", 1)[0]
    assert_error(raised.value, case, where=where)
    assert stores_empty(aws) == NOTHING_WRITTEN
    if name == "too-large-streamed":  # stopped while streaming, not after the server sent everything
        assert http_server.sent_bytes < 5_000_000


@pytest.mark.parametrize("name", list(SOURCE_CASES))
def test_bad_source_fails_the_run_in_download_with_the_error_in_the_summary(
    name: str,
    aws: Any,
    pipeline: LocalPipeline,
    run_input: Callable[..., dict[str, Any]],
    serve: Callable[[Case], str],
) -> None:
    case = SOURCE_CASES[name]
    summary = pipeline.run(run_input(source_url=serve(case), max_source_bytes=100_000))
    assert summary["status"] == "FAILED"
    assert states(summary) == {"download": "failed", "train": "not_run", "upload": "not_run"}
    assert summary["error"]["type"] == case.error.__name__
    assert summary["error"]["task"] == "download"
    for fragment in case.fragments:
        assert fragment in summary["error"]["message"]
    assert stores_empty(aws) == NOTHING_WRITTEN
    downloads = [name for name, _ in pipeline.lambdas.invocations].count("download")
    # The state machine retries only what may pass; a source not there is waited for by the plan (SourceWaitSeconds)
    retried = case.error.retryable and case.error is not exceptions.SourceNotReadyError
    assert downloads == (4 if retried else 1)


@pytest.mark.parametrize(
    "text",
    [
        IRIS.replace(b"\n", b"\r\n"),  # CRLF line endings
        b"\xef\xbb\xbf" + IRIS,  # a UTF-8 byte order mark
        IRIS + b"\n\n\n",  # more trailing blank lines
        b"\xef\xbb\xbf" + IRIS.replace(b"\n", b"\r\n") + b"\r\n  \r\n",  # all of them
    ],
    ids=["crlf", "bom", "trailing-blank-lines", "all-three"],
)
def test_crlf_bom_and_trailing_blank_lines_are_accepted_end_to_end(
    text: bytes, aws: Any, pipeline: LocalPipeline, run_input: Callable[..., dict[str, Any]], http_server: Any
) -> None:
    http_server.routes["/data"] = respond(200, text)
    summary = pipeline.run(run_input(source_url=http_server.url("/data")))
    assert summary["status"] == "SUCCEEDED", summary["error"]
    metrics = aws.get_object(Bucket=ARTIFACTS, Key=METRICS_KEY)["Body"].read()
    assert b'"rows": 150' in metrics


# --- the event and its parameters: refused by the plan, before anything runs --------------------
BAD_INPUTS = {
    "run-date-malformed": ({"run_date": "2026-13-01"}, exceptions.InvalidRequestError, "run_date '2026-13-01'"),
    "run-date-not-a-date": ({"run_date": "yesterday"}, exceptions.InvalidRequestError, "YYYY-MM-DD"),
    "run-date-a-number": ({"run_date": 20261125}, exceptions.InvalidRequestError, "run_date must be a string"),
    "scheduled-time-malformed": (
        {"run_date": None, "scheduled_time": "at dawn"},
        exceptions.InvalidRequestError,
        "scheduled_time 'at dawn'",
    ),
    "source-local-directory": ({"source_url": "/etc"}, exceptions.InvalidRequestError, "source /etc is a directory"),
    "source-ftp-scheme": (
        {"source_url": "ftp://example.com/iris.data"},
        exceptions.InvalidRequestError,
        "scheme 'ftp'",
    ),
    "source-ec2-metadata": (
        {"source_url": "http://169.254.169.254/latest/meta-data/"},
        exceptions.InvalidRequestError,
        "link-local or cloud metadata",
    ),
    "source-ec2-metadata-ipv6": (
        {"source_url": "http://[fd00:ec2::254]/latest/"},
        exceptions.InvalidRequestError,
        "cloud metadata",
    ),
    "source-gcp-metadata": (
        {"source_url": "http://metadata.google.internal/x"},
        exceptions.InvalidRequestError,
        "cloud metadata service",
    ),
    "source-malformed-url": ({"source_url": "http://[oops/x"}, exceptions.InvalidRequestError, "not a valid URL"),
    "source-port-out-of-range": (
        {"source_url": "http://example.com:99999/x"},
        exceptions.InvalidRequestError,
        "not a valid URL",
    ),
    "artifact-root-malformed": (
        {"artifact_root": "s3://[x/y"},
        exceptions.InvalidRequestError,
        "'[x' is not a valid S3 bucket name",
    ),
    "max-source-bytes-too-large": (
        {"max_source_bytes": 10**12},
        exceptions.InvalidRequestError,
        "max_source_bytes must be an integer of at least 1 and at most 5368709120 (5 GiB), got 1000000000000",
    ),
    "artifact-root-not-a-uri": (
        {"artifact_root": "s3://Not_A_Bucket/x"},
        exceptions.InvalidRequestError,
        "'Not_A_Bucket' is not a valid S3 bucket name",
    ),
    "artifact-root-other-scheme": (
        {"artifact_root": "gs://bucket/x"},
        exceptions.InvalidRequestError,
        "unsupported scheme 'gs'",
    ),
    "artifact-root-missing-bucket": (
        {"artifact_root": "s3://no-such-mlpipe-bucket/runs"},
        exceptions.StorageError,
        "s3://no-such-mlpipe-bucket/runs/2026-11-25/dataset-",
    ),
    "publish-uri-missing-bucket": (
        {"publish_uri": "s3://no-such-mlpipe-models/iris"},
        exceptions.StorageError,
        "s3://no-such-mlpipe-models/iris/iris/2026-11-25/published-",
    ),
    "publish-uri-under-a-file": (
        {"publish_uri": "/etc/hostname/models"},
        exceptions.StorageError,
        "/etc/hostname is not a directory",
    ),
    "unknown-field": (
        {"hyperparameter": {"C": 2}},
        exceptions.InvalidRequestError,
        "unknown field(s) in the execution input: hyperparameter",
    ),
    "hyperparameter-wrong-type": (
        {"hyperparameters": {"C": "large"}},
        exceptions.InvalidHyperparametersError,
        'C must be a float in (0, inf], got "large"',
    ),
    "hyperparameter-out-of-range": (
        {"hyperparameters": {"C": -1}},
        exceptions.InvalidHyperparametersError,
        "C must be a float in (0, inf], got -1",
    ),
    "hyperparameter-unknown-kernel": (
        {"hyperparameters": {"kernel": "cubic"}},
        exceptions.InvalidHyperparametersError,
        "kernel must be one of",
    ),
    "hyperparameter-unknown-name": (
        {"hyperparameters": {"c": 1.0}},
        exceptions.InvalidHyperparametersError,
        "'c' is not a parameter of svc (its parameters: C,",
    ),
    "hyperparameters-not-an-object": (
        {"hyperparameters": [1, 2]},
        exceptions.InvalidHyperparametersError,
        "must be a JSON object",
    ),
    "cv-folds-out-of-range": (
        {"cv_folds": 1},
        exceptions.InvalidRequestError,
        "cv_folds must be an integer of at least 2",
    ),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_execution_input_is_refused_by_the_plan_before_anything_runs(
    name: str, aws: Any, pipeline: LocalPipeline, run_input: Callable[..., dict[str, Any]], http_server: Any
) -> None:
    overrides, error, fragment = BAD_INPUTS[name]
    summary = pipeline.run(run_input(**overrides))
    assert summary["status"] == "FAILED"
    assert summary["error"]["task"] == "plan"
    assert summary["error"]["type"] == error.__name__
    assert fragment in summary["error"]["message"]
    assert set(states(summary).values()) == {"not_run"}
    assert [name for name, _ in pipeline.lambdas.invocations] == ["plan", "report"]
    assert http_server.requests == []
    assert stores_empty(aws) == NOTHING_WRITTEN


@pytest.mark.parametrize(
    ("function", "event", "error", "fragment"),
    [
        (
            "download",
            {"source_url": "http://127.0.0.1:1/x", "dataset_uri": DATASET},
            exceptions.InvalidRequestError,
            "the event lacks run_date",
        ),
        (
            "train",
            {"run_date": "2026-02-30", "dataset_uri": DATASET, "model_uri": DATASET},
            exceptions.InvalidRequestError,
            "2026-02-30",
        ),
        (
            "upload",
            {"run_date": DATE, "model_uri": "s3://b/m.pkl", "published_uri": "s3://b/p.pkl", "extra": 1},
            exceptions.InvalidRequestError,
            "unknown field(s) in the event: extra",
        ),
        (
            "train",
            {
                "run_date": DATE,
                "dataset_uri": DATASET,
                "model_uri": "s3://bucket/m.pkl",
                "hyperparameters": {"gamma": -1},
            },
            exceptions.InvalidHyperparametersError,
            "gamma must be",
        ),
        (
            "download",
            {"run_date": DATE, "source_url": "file:///etc/passwd", "dataset_uri": DATASET},
            exceptions.InvalidRequestError,
            "is a local path: in AWS a function's disk is its own",
        ),
        (
            "download",
            {"run_date": DATE, "source_url": "http://127.0.0.1:1/x", "dataset_uri": "/tmp/x.csv"},
            exceptions.InvalidRequestError,
            "local path; in AWS use s3://",
        ),
    ],
    ids=[
        "missing-run-date",
        "malformed-run-date",
        "unknown-field",
        "bad-hyperparameter",
        "file-source",
        "local-path-in-aws",
    ],
)
def test_task_handlers_refuse_bad_events(
    function: str,
    event: dict[str, Any],
    error: type[Exception],
    fragment: str,
    aws: Any,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if "local path" in fragment:
        monkeypatch.setenv("MLPIPE_ALLOW_LOCAL_STORAGE", "false")  # as deployed
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        invoke(function, event)
    assert stores_empty(aws) == NOTHING_WRITTEN


def test_a_bucket_that_cannot_be_written_fails_the_download_and_leaves_nothing(
    aws: Any, pipeline: LocalPipeline, run_input: Callable[..., dict[str, Any]], s3_faults: Any
) -> None:
    s3_faults.fail("PutObject", forever=(403, "AccessDenied"))
    summary = pipeline.run(run_input())
    assert summary["error"]["type"] == "StorageError"
    assert "access denied" in summary["error"]["message"]
    assert f"s3://{ARTIFACTS}/{DATASET_KEY}" in summary["error"]["message"]
    assert stores_empty(aws) == NOTHING_WRITTEN


def test_a_model_that_no_longer_matches_its_sha256_is_not_published(
    aws: Any, pipeline: LocalPipeline, run_input: Callable[..., dict[str, Any]]
) -> None:
    pipeline.run(run_input())
    aws.delete_object(Bucket=MODELS, Key=PUBLISHED_KEY)
    aws.put_object(Bucket=ARTIFACTS, Key=MODEL_KEY, Body=b"replaced by someone")
    before = stores_empty(aws)[MODELS]
    summary = pipeline.run(run_input())
    assert summary["status"] == "FAILED"
    # The model no longer matches its card, so it is not complete: train finds it so, and refuses it before training
    assert states(summary) == {"download": "present", "train": "failed", "upload": "not_run"}
    assert summary["error"]["type"] == "IntegrityError"
    assert f"s3://{ARTIFACTS}/{MODEL_KEY} has sha256" in summary["error"]["message"]
    assert "corrupted or replaced" in summary["error"]["message"]
    assert stores_empty(aws)[MODELS] == before  # nothing new at the publish location
    assert PUBLISHED_KEY not in [o["Key"] for o in aws.list_objects_v2(Bucket=MODELS).get("Contents", [])]


@pytest.mark.parametrize("execution_input", [["2026-11-25"], "2026-11-25", 7])
def test_an_input_that_is_not_an_object_is_named_by_the_plan(
    execution_input: Any, aws: Any, pipeline: LocalPipeline
) -> None:
    summary = pipeline.run(execution_input)  # type: ignore[arg-type]
    assert summary["error"] == {
        "task": "plan",
        "type": "InvalidRequestError",
        "message": f"the execution input must be a JSON object, got {type(execution_input).__name__}",
    }
    assert stores_empty(aws) == NOTHING_WRITTEN


def test_a_publish_bucket_that_cannot_be_written_fails_the_upload_and_the_fixed_rerun_resumes_there(
    aws: Any, pipeline: LocalPipeline, run_input: Callable[..., dict[str, Any]], s3_faults: Any
) -> None:
    # Only a write can show that a bucket refuses writes, so this is found by upload, not by the plan.
    s3_faults.fail("PutObject", forever=(403, "AccessDenied"), bucket=MODELS)
    failed = pipeline.run(run_input())
    assert states(failed) == {"download": "ran", "train": "ran", "upload": "failed"}
    assert failed["error"]["type"] == "StorageError"
    assert f"cannot write s3://{MODELS}/iris/iris/{DATE}/" in failed["error"]["message"]
    assert stores_empty(aws)[MODELS] == []
    s3_faults.fail("PutObject", bucket=MODELS)  # the role is fixed
    s3_faults.always.clear()
    resumed = pipeline.run(run_input())
    assert states(resumed) == {"download": "present", "train": "present", "upload": "ran"}
