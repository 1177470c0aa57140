"""Large sources: the body streams from real HTTP on 127.0.0.1 to S3 (moto) in parts, validated on the way,
and nothing is left (no object, no multipart upload) when it fails; the download's progress lines."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient

from mlpipe import exceptions, fetch
from mlpipe.fetch import FetchPolicy, fetch_dataset
from mlpipe.observability import CONSOLE_ERRORS_ENV, ConsoleAwareFormatter
from pipeline_local.cli import main
from tests.conftest import ARTIFACTS, SAMPLE
from tests.stores import target as target_for

IRIS_ROWS = [line + b"\n" for line in SAMPLE.read_bytes().splitlines() if line.strip()]
KEY = "artifacts/2026-03-01/dataset-0123456789ab/dataset.csv"


def iris_body(size: int) -> bytes:
    """Whole Iris rows, repeated to at least ``size`` bytes."""
    block = b"".join(IRIS_ROWS)
    return block * -(-size // len(block))


def serve(http_server: Any, path: str, body: bytes, *, length: int | None = None, chunked: bool = False) -> str:
    """A route answering ``body`` (with ``length`` as its Content-Length, or chunked); its URL."""

    def route(handler: Any) -> None:
        handler.send_response(200)
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Content-Length", str(len(body) if length is None else length))
        handler.end_headers()
        for start in range(0, len(body), 65536):
            piece = body[start : start + 65536]
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()
        handler.close_connection = True

    http_server.routes[path] = route
    return str(http_server.url(path))


def policy(max_bytes: int = 100 * 1024 * 1024) -> FetchPolicy:
    return FetchPolicy(max_bytes=max_bytes, attempts=1, allow_loopback=True, min_class_rows=5)


def nothing_left(s3: Any) -> bool:
    """No object at the dataset's key and no multipart upload in the bucket."""
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=ARTIFACTS).get("Contents", [])]
    return KEY not in keys and s3.list_multipart_uploads(Bucket=ARTIFACTS).get("Uploads", []) == []


def test_a_source_larger_than_the_part_size_streams_to_s3_in_parts(
    aws: Any, small_parts: int, http_server: Any
) -> None:
    # Given a valid CSV of about 12 parts
    body = iris_body(12 * small_parts)
    url = serve(http_server, "/big.csv", body)
    # When it is downloaded into S3
    stats = fetch_dataset(url, target_for(f"s3://{ARTIFACTS}/{KEY}"), policy())
    # Then the object is the source's bytes, made of several parts, and the stats say so
    stored = aws.get_object(Bucket=ARTIFACTS, Key=KEY)
    assert int(stored["ETag"].strip('"').rsplit("-", 1)[1]) >= 12
    assert hashlib.sha256(stored["Body"].read()).hexdigest() == hashlib.sha256(body).hexdigest() == stats.sha256
    assert stats.bytes == len(body)
    assert stats.rows == len(body) // len(b"".join(IRIS_ROWS)) * len(IRIS_ROWS)


BROKEN = {
    # an invalid row after several parts went up
    "invalid-row": (
        lambda size: iris_body(8 * size) + b"5.1,3.5,1.4,Iris-setosa\n" + iris_body(size),
        {},
        exceptions.InvalidDatasetError,
        "expected 5 columns",
    ),
    # every row valid, but the end-of-file check fails: one class only
    "end-of-file-check": (
        lambda size: IRIS_ROWS[0] * (8 * size // len(IRIS_ROWS[0])),
        {},
        exceptions.InvalidDatasetError,
        "only one class",
    ),
    # more than max_source_bytes, without a Content-Length to refuse it up front
    "oversize": (lambda size: iris_body(8 * size), {"chunked": True}, exceptions.SourceTooLargeError, "sent more"),
    # the connection ends before the announced length
    "broken-off": (
        lambda size: iris_body(8 * size),
        {"length": 20 * 1024 * 1024},
        exceptions.SourceUnavailableError,
        "broke off",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_bad_body_after_several_parts_leaves_no_object_and_no_multipart_upload(
    case: str, aws: Any, small_parts: int, http_server: Any
) -> None:
    make, options, error, message = BROKEN[case]
    body = make(small_parts)
    url = serve(http_server, "/bad.csv", body, **options)
    limit = 6 * small_parts if case == "oversize" else 100 * 1024 * 1024
    with pytest.raises(error, match=message):
        fetch_dataset(url, target_for(f"s3://{ARTIFACTS}/{KEY}"), policy(limit))
    assert nothing_left(aws)


def test_a_stream_write_sends_several_parts_before_a_late_failure(
    aws: Any, small_parts: int, http_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the test above relies on: by the time the invalid row is read, parts were uploaded.

    uploaded: list[int] = []
    original = BaseClient._make_api_call

    def recording(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation == "UploadPart":
            uploaded.append(params["PartNumber"])
        if operation == "AbortMultipartUpload":
            uploaded.append(-1)
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    make, _, error, _ = BROKEN["invalid-row"]
    url = serve(http_server, "/bad.csv", make(small_parts))
    with pytest.raises(error):
        fetch_dataset(url, target_for(f"s3://{ARTIFACTS}/{KEY}"), policy())
    assert len([n for n in uploaded if n > 0]) >= 4
    assert uploaded[-1] == -1  # and the upload was aborted last
    assert nothing_left(aws)


# --- progress -----------------------------------------------------------------------------------
class FakeClock:
    """A monotonic clock that moves on by ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def progress_records() -> Iterator[list[logging.LogRecord]]:
    """The records the ``mlpipe.fetch`` logger emits at INFO and above."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("mlpipe.fetch")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_download_reports_its_progress_every_few_seconds_not_per_chunk(
    chunked: bool, tmp_path: Path, http_server: Any, progress_records: list[logging.LogRecord]
) -> None:
    # Given a 2 MB body (32 chunks of 64 KiB) and a clock that moves on 1 s each time it is read
    body = iris_body(2 * 1024 * 1024)
    url = serve(http_server, "/data.csv", body, chunked=chunked)
    fetch_dataset(url, target_for(str(tmp_path / "dataset.csv")), policy(), clock=FakeClock(1.0))
    lines = [r for r in progress_records if getattr(r, "progress", None)]
    numbers = [r.progress for r in lines]  # type: ignore[attr-defined]
    # Then a line every PROGRESS_SECONDS (5 chunks here), not one per chunk, and a last one with the totals
    assert 5 <= len(lines) < len(body) // 65536
    seconds = [n["seconds"] for n in numbers]
    assert all(later - earlier >= fetch.PROGRESS_SECONDS for earlier, later in itertools.pairwise(seconds[:-1]))
    received = [n["bytes"] for n in numbers]
    assert received == sorted(received)
    assert numbers[-1]["bytes"] == len(body)
    assert lines[-1].getMessage().startswith(f"download: {len(body) / 1e6:.1f} MB in ")
    assert all(n["mb_per_second"] > 0 for n in numbers)
    if chunked:  # the size is not known: bytes and rate, no percent
        assert all(n["percent"] is None and n["total_bytes"] is None for n in numbers)
        assert "%" not in lines[0].getMessage()
    else:
        assert [n["total_bytes"] for n in numbers] == [len(body)] * len(numbers)
        assert 0 < numbers[0]["percent"] < numbers[-2]["percent"] < 100
        assert numbers[-1]["percent"] == 100.0
        assert f"MB of {len(body) / 1e6:.1f} MB (" in lines[0].getMessage()


def test_pipeline_run_shows_the_download_progress_on_the_console_while_it_runs(
    tmp_path: Path, http_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:

    # Given a source that sends half its body, then waits until the console shows a progress line
    body = iris_body(1024 * 1024)
    shown = threading.Event()

    def route(handler: Any) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[: len(body) // 2])
        handler.wfile.flush()
        shown.wait(timeout=20)
        handler.wfile.write(body[len(body) // 2 :])

    http_server.routes["/slow.csv"] = route

    class Console(io.StringIO):
        def write(self, text: str) -> int:
            if "download: " in text and " MB of " in text:
                shown.set()
            return super().write(text)

    console = Console()
    monkeypatch.setattr(sys, "stderr", console)
    monkeypatch.setattr(fetch, "PROGRESS_SECONDS", 0.0)  # a line at every chunk: no waiting in the test
    monkeypatch.setenv("SOURCE_READ_TIMEOUT_SECONDS", "30")
    # When pipeline run downloads it
    status = main(["run", "--json", "--source-url", http_server.url("/slow.csv"), *roots(tmp_path)])
    # Then the progress was on the console before the body was complete, then the total
    assert shown.is_set()
    assert status == 0, console.getvalue()
    lines = console.getvalue().splitlines()
    progress = [line for line in lines if line.strip().startswith("download: ")]
    assert progress[0].startswith(" " * 14 + "download: ")
    assert "%) at " in progress[0]
    assert f"download: {len(body) / 1e6:.1f} MB in " in progress[-1]
    # and the training's phases, each as it starts
    training = [line.strip() for line in lines if line.startswith(" " * 14) and "download: " not in line]
    assert [t.split(" ", 1)[0] for t in training if t.split(" ", 1)[0] in {"reading", "fitting"}] == [
        "reading",
        "fitting",
    ]
    assert any(t.startswith("fitted and scored the final fit") for t in training)
    assert not any(line.startswith('{"level"') for line in lines)


def roots(tmp_path: Path) -> list[str]:
    return ["--artifact-root", str(tmp_path / "artifacts"), "--publish-uri", str(tmp_path / "published")]


def test_progress_lines_are_json_with_their_numbers_in_aws(
    tmp_path: Path, http_server: Any, progress_records: list[logging.LogRecord], monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.delenv(CONSOLE_ERRORS_ENV, raising=False)
    fetch_dataset(http_server.url(), target_for(str(tmp_path / "d.csv")), policy(), clock=FakeClock(0.5))
    line = json.loads(ConsoleAwareFormatter().format(progress_records[-1]))
    assert line["level"] == "INFO"
    assert line["message"].startswith("download: 0.0 MB in ")
    assert line["progress"]["bytes"] == SAMPLE.stat().st_size
    assert set(line["progress"]) == {"task", "bytes", "total_bytes", "percent", "seconds", "mb_per_second"}
