"""A download has one overall deadline, from the function's remaining time less a margin to clean up: a source
that drips its body (or its headers) too slowly ends in DownloadTimeoutError with nothing at the output."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests.adapters

from mlpipe.exceptions import DownloadTimeoutError, PipelineError, SourceUnavailableError
from mlpipe.fetch import FetchPolicy, fetch_dataset
from mlpipe.tasks import DOWNLOAD_CLEANUP_SECONDS
from pipeline_local.lambdas import LambdaContext, load_handler
from tests.conftest import ARTIFACTS, NOTHING_WRITTEN, SAMPLE, stores_empty
from tests.stores import target
from tests.unit.test_source_guard import https_server, stub_resolver

DRIP_SECONDS = 0.05  # between two writes: well inside the tests' 0.5 s read timeout, so only a deadline can stop it
DRIP_LIMIT_SECONDS = 12.0  # the route gives up by then, whatever the client does


def drip(*, length: bool, size: int = 8, pause: float = DRIP_SECONDS) -> Any:
    """A 200 whose body (the whole sample) arrives ``size`` bytes at a time, ``pause`` seconds apart (with or
    without Content-Length): a valid dataset, if it ever ends."""

    def route(handler: Any) -> None:
        body = SAMPLE.read_bytes()
        handler.send_response(200)
        if length:
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        started = time.monotonic()
        try:
            for start in range(0, len(body), size):
                if time.monotonic() - started > DRIP_LIMIT_SECONDS:
                    return
                handler.wfile.write(body[start : start + size])
                handler.wfile.flush()
                time.sleep(pause)
        except OSError:
            return  # the client went away

    return route


def drip_headers(handler: Any) -> None:
    """The status line and headers, one byte at a time: the response never even starts."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nX-Padding: " + b"x" * 400 + b"\r\n\r\n"
    started = time.monotonic()
    try:
        for byte in head:
            if time.monotonic() - started > DRIP_LIMIT_SECONDS:
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(DRIP_SECONDS)
    except OSError:
        return


def policy(seconds: float | None, **overrides: Any) -> FetchPolicy:
    return FetchPolicy(max_bytes=1_000_000, allow_loopback=True, read_timeout=0.5, time_budget=seconds, **overrides)


@pytest.mark.parametrize(
    "route", [drip(length=False), drip(length=True), drip_headers], ids=["body", "body-with-length", "headers"]
)
def test_a_dripping_source_ends_at_the_deadline_with_nothing_written(
    tmp_path: Path, http_server: Any, route: Any
) -> None:
    http_server.routes["/slow"] = route
    folder = tmp_path / "out"
    folder.mkdir()
    dataset = target(str(folder / "dataset.csv"))
    started = time.monotonic()
    with pytest.raises(DownloadTimeoutError) as timed_out:
        fetch_dataset(http_server.url("/slow"), dataset, policy(1.0))
    assert time.monotonic() - started < 4.0
    message = str(timed_out.value)
    assert http_server.url("/slow") in message
    assert "did not finish within 1.0 s" in message
    assert not dataset.exists()
    assert list(folder.iterdir()) == []  # no partial file either


def test_the_deadline_counts_the_retries_and_their_backoff(tmp_path: Path, http_server: Any) -> None:
    def unavailable(handler: Any) -> None:
        handler.send_response(503)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    http_server.routes["/down"] = unavailable
    dataset = target(str(tmp_path / "dataset.csv"))
    started = time.monotonic()
    # ten attempts with backoffs of up to 3 s each would take far longer than the 1 s there is
    with pytest.raises(SourceUnavailableError):
        fetch_dataset(http_server.url("/down"), dataset, policy(1.0, attempts=10, backoff_seconds=3.0))
    assert time.monotonic() - started < 4.0


def test_a_source_within_the_deadline_is_downloaded_as_before(tmp_path: Path, http_server: Any) -> None:
    http_server.routes["/quick"] = drip(length=False, size=512, pause=0.01)
    dataset = target(str(tmp_path / "dataset.csv"))
    stats = fetch_dataset(http_server.url("/quick"), dataset, policy(30.0))
    assert stats.rows == 150
    assert dataset.read_bytes() == SAMPLE.read_bytes()


def test_no_time_left_fails_before_any_request(tmp_path: Path, http_server: Any) -> None:
    with pytest.raises(DownloadTimeoutError, match="no time left"):
        fetch_dataset(http_server.url(), target(str(tmp_path / "dataset.csv")), policy(0.0))
    assert http_server.requests == []


def test_the_handler_gives_the_download_the_functions_remaining_time(aws: Any, http_server: Any) -> None:
    http_server.routes["/slow"] = drip(length=False)
    event = {"run_date": "2026-11-25", "source_url": http_server.url("/slow"), "dataset_uri": f"s3://{ARTIFACTS}/d.csv"}
    handler = load_handler("download")
    context = LambdaContext("download", timeout_seconds=DOWNLOAD_CLEANUP_SECONDS + 1.5)  # 1.5 s for the download
    with pytest.raises(DownloadTimeoutError) as timed_out:
        handler(event, context)
    left = context.get_remaining_time_in_millis() / 1000
    # it ended well before the function would be killed (the route drips for 12 s), with time left to clean up
    assert left > DOWNLOAD_CLEANUP_SECONDS / 2
    assert "raise the download function's Timeout" in str(timed_out.value)
    assert stores_empty(aws) == NOTHING_WRITTEN
    assert aws.list_multipart_uploads(Bucket=ARTIFACTS).get("Uploads", []) == []  # aborted: not even a part is left
    assert not isinstance(timed_out.value, SourceUnavailableError)
    assert not timed_out.value.retryable  # another attempt would wait as long again: the state machine does not retry
    assert isinstance(timed_out.value, PipelineError)


def test_a_dripping_https_source_ends_at_the_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with https_server(tmp_path, "data.example", pause=DRIP_SECONDS) as server:
        monkeypatch.setattr(requests.adapters, "DEFAULT_CA_BUNDLE_PATH", str(server.ca_file))
        stub_resolver(monkeypatch, {"data.example": lambda: ["127.0.0.1"]})
        folder = tmp_path / "out"
        folder.mkdir()
        dataset = target(str(folder / "dataset.csv"))
        started = time.monotonic()
        with pytest.raises(DownloadTimeoutError, match=r"did not finish within 1\.0 s"):
            fetch_dataset(f"https://data.example:{server.server_address[1]}/iris.data", dataset, policy(1.0))
        assert time.monotonic() - started < 4.0
        assert list(folder.iterdir()) == []
