"""Faults: transient failures are retried, crashes leave nothing partial, concurrent runs never overwrite."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlpipe import exceptions
from mlpipe.fetch import FetchPolicy, fetch_dataset
from mlpipe.steps import TASKS
from mlpipe.storage import S3Target
from pipeline_local.runner import LocalPipeline
from tests.conftest import ARTIFACTS, MODELS, NOTHING_WRITTEN, SAMPLE, stores_empty
from tests.integration.conftest import (
    DATASET_KEY,
    LINEAGE_KEY,
    METRICS_KEY,
    MODEL_KEY,
    PROFILE_KEY,
    PUBLISHED_KEY,
    PUBLISHED_METRICS_KEY,
    states,
)
from tests.stores import target as target_for

Input = Callable[..., dict[str, Any]]
IRIS = SAMPLE.read_bytes()


def flaky(failures: int, status: int = 503) -> Callable[[Any], None]:
    """A route that answers ``status`` ``failures`` times, then serves the Iris file."""
    count = {"n": 0}

    def route(handler: Any) -> None:
        count["n"] += 1
        body = IRIS if count["n"] > failures else b"busy"
        handler.send_response(200 if count["n"] > failures else status)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return route


# --- transient source failures ------------------------------------------------------------------
def test_a_blip_is_absorbed_inside_the_function(
    aws: Any, pipeline: LocalPipeline, run_input: Input, http_server: Any
) -> None:
    http_server.routes["/data"] = flaky(1)
    summary = pipeline.run(run_input(source_url=http_server.url("/data")))
    assert summary["status"] == "SUCCEEDED"
    assert http_server.requests.count("/data") == 2
    assert [name for name, _ in pipeline.lambdas.invocations].count("download") == 1


def test_a_source_that_recovers_within_the_state_machine_retries_gives_a_normal_run(
    aws: Any, pipeline: LocalPipeline, run_input: Input, http_server: Any
) -> None:
    # Given a source that fails 3 times: both attempts of the first invocation, and one more
    http_server.routes["/data"] = flaky(3)
    summary = pipeline.run(run_input(source_url=http_server.url("/data")))
    # Then the state machine's Retry invokes download again, and the run is normal
    assert summary["status"] == "SUCCEEDED"
    assert states(summary) == dict.fromkeys(TASKS, "ran")
    assert [name for name, _ in pipeline.lambdas.invocations].count("download") == 2
    assert http_server.requests.count("/data") == 4


def test_a_source_that_never_recovers_exhausts_both_retry_layers(
    aws: Any, pipeline: LocalPipeline, run_input: Input, http_server: Any
) -> None:
    http_server.routes["/data"] = flaky(1000, status=502)
    summary = pipeline.run(run_input(source_url=http_server.url("/data")))
    assert summary["error"]["type"] == "SourceUnavailableError"
    # 2 attempts in each invocation, 1 + 3 invocations (the ASL's MaxAttempts)
    assert http_server.requests.count("/data") == 8
    assert stores_empty(aws) == NOTHING_WRITTEN


def test_in_function_retries_back_off_exponentially_with_full_jitter(tmp_path: Path, http_server: Any) -> None:
    http_server.routes["/data"] = flaky(1000)
    delays: list[float] = []
    policy = FetchPolicy(max_bytes=10_000, attempts=4, backoff_seconds=0.5, allow_loopback=True)
    with pytest.raises(exceptions.SourceUnavailableError):
        fetch_dataset(http_server.url("/data"), target_for(str(tmp_path / "d.csv")), policy, sleep=delays.append)
    assert len(delays) == 3
    for attempt, delay in enumerate(delays):
        assert 0 <= delay <= 0.5 * 2**attempt
    assert not (tmp_path / "d.csv").exists()


# --- crashes in the middle of a write -----------------------------------------------------------
class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the pipeline handles it."""


CRASH_POINTS = {
    "dataset": f"{ARTIFACTS}/{DATASET_KEY}",
    "model": f"{ARTIFACTS}/{MODEL_KEY}",
    "metrics": f"{ARTIFACTS}/{METRICS_KEY}",
    "published-model": f"{MODELS}/{PUBLISHED_KEY}",
    "published-metrics": f"{MODELS}/{PUBLISHED_METRICS_KEY}",
}


@pytest.fixture
def crash_once(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Make the next write to one S3 object (atomic or streamed) die after half of its bytes were written."""
    armed: dict[str, str] = {}

    def dying(original: Callable[..., Any]) -> Callable[..., Any]:
        return lambda self, **kwargs: die_at(self, original(self, **kwargs))

    def die_at(self: S3Target, manager: Any) -> Any:
        if armed.get("at") != f"{self.bucket}/{self.key}":
            return manager
        armed.clear()

        class Dying:
            def __enter__(self) -> Any:
                self.handle = manager.__enter__()
                return self

            def write(self, data: bytes) -> int:
                self.handle.write(data[: len(data) // 2])
                raise Crash

            def __getattr__(self, name: str) -> Any:
                return getattr(self.handle, name)

            def __exit__(self, *exc: Any) -> Any:
                return manager.__exit__(*exc)

        return Dying()

    monkeypatch.setattr(S3Target, "atomic_write", dying(S3Target.atomic_write))
    monkeypatch.setattr(S3Target, "stream_write", dying(S3Target.stream_write))
    return lambda at: armed.update(at=at)


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_a_crash_mid_write_leaves_nothing_and_the_next_run_redoes_it(
    point: str, aws: Any, pipeline: LocalPipeline, run_input: Input, crash_once: Callable[[str], None]
) -> None:
    bucket, key = CRASH_POINTS[point].split("/", 1)
    crash_once(CRASH_POINTS[point])
    first = pipeline.run(run_input())
    assert first["status"] == "FAILED"
    assert first["error"]["type"] == "Runtime.ExitError"
    assert key not in [v["Key"] for v in aws.list_object_versions(Bucket=bucket).get("Versions", [])]
    second = pipeline.run(run_input())
    assert second["status"] == "SUCCEEDED", second["error"]
    stored = aws.get_object(Bucket=bucket, Key=key)["Body"].read()
    if key.endswith("metrics.json"):
        model = aws.get_object(Bucket=bucket, Key=key.replace("metrics.json", "model.pkl"))["Body"].read()
        assert json.loads(stored)["model_sha256"] == hashlib.sha256(model).hexdigest()
    else:
        assert len(stored) > 100


def test_a_killed_process_leaves_no_file_at_a_local_target(tmp_path: Path) -> None:
    target = tmp_path / "runs" / "dataset.csv"
    script = (
        "import os, sys\n"
        "from mlpipe.storage import LocalTarget\n"
        f"with LocalTarget({str(target)!r}).atomic_write() as handle:\n"
        "    handle.write(b'5.1,3.5,1.4,0.2,Iris-setosa\\n' * 1000)\n"
        "    handle.flush()\n"
        "    os._exit(9)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    assert result.returncode == 9
    assert not target.exists()
    partial = list(target.parent.iterdir())
    assert [p.name.startswith(".dataset.csv.") and p.name.endswith(".partial") for p in partial] == [True]
    # the next write finds the target missing and writes it
    target_for(str(target)).write_bytes(b"complete")
    assert target.read_bytes() == b"complete"


def test_an_interrupted_multipart_upload_leaves_no_object(aws: Any, s3_faults: Any) -> None:
    s3_faults.fail("UploadPart", (200, ""), forever=(400, "InvalidRequest"))  # the second part fails for good
    target = target_for(f"s3://{ARTIFACTS}/big/model.pkl")
    with pytest.raises(exceptions.StorageError):
        target.write_bytes(b"m" * (20 * 1024 * 1024))
    assert stores_empty(aws) == NOTHING_WRITTEN
    assert aws.list_multipart_uploads(Bucket=ARTIFACTS).get("Uploads", []) == []


# --- two executions for the same run date -------------------------------------------------------
def test_two_executions_of_one_date_write_each_target_once_and_both_succeed(
    aws: Any, pipeline: LocalPipeline, run_input: Input, http_server: Any
) -> None:
    # Given a source that answers only when both downloads are waiting for it
    barrier = threading.Barrier(2, timeout=10)

    def together(handler: Any) -> None:
        barrier.wait()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(IRIS)))
        handler.end_headers()
        handler.wfile.write(IRIS)

    http_server.routes["/data"] = together
    # When a scheduled and a manual execution start at once
    with pipeline.lambdas.active():
        arns = [pipeline.start(run_input(source_url=http_server.url("/data"))) for _ in range(2)]
        summaries = [pipeline.wait(arn) for arn in arns]
    # Then both succeed, and for each task exactly one ran and the other found it present
    assert [s["status"] for s in summaries] == ["SUCCEEDED", "SUCCEEDED"]
    for task in TASKS:
        assert sorted(s["tasks"][task]["state"] for s in summaries) == ["present", "ran"], task
    # and nothing was overwritten: every object has exactly one version
    written = stores_empty(aws)
    history = [key for key in written[MODELS] if key.startswith("iris/iris/champion-history/")]
    assert written == {
        ARTIFACTS: sorted([DATASET_KEY, LINEAGE_KEY, PROFILE_KEY, METRICS_KEY, MODEL_KEY]),
        MODELS: sorted(
            [PUBLISHED_METRICS_KEY, PUBLISHED_KEY, "iris/iris/champion.json", "iris/iris/contract.json", *history]
        ),
    }
    # and the model became the champion once: the second promotion found it champion already
    assert len(history) == 1
    assert sorted(s["champion"]["promoted"] for s in summaries) == [False, True]
    assert http_server.requests.count("/data") == 2


def test_concurrent_conditional_writes_to_a_local_directory_have_one_winner(tmp_path: Path) -> None:
    target = tmp_path / "model.pkl"
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def write(n: int) -> None:
        with target_for(str(target)).atomic_write() as handle:
            handle.write(f"writer {n}".encode())
            barrier.wait()
        outcomes.append("wrote")

    def run(n: int) -> None:
        try:
            write(n)
        except exceptions.TargetExistsError:
            outcomes.append("present")

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["present"] * 7 + ["wrote"]
    assert [p.name for p in tmp_path.iterdir()] == ["model.pkl"]


# --- S3 throttling and 5xx ------------------------------------------------------------------------
def test_s3_throttling_during_a_write_is_retried_by_the_sdk(
    aws: Any, pipeline: LocalPipeline, run_input: Input, s3_faults: Any
) -> None:
    s3_faults.fail("PutObject", (503, "SlowDown"), (500, "InternalError"))
    summary = pipeline.run(run_input())
    assert summary["status"] == "SUCCEEDED"
    assert [name for name, _ in pipeline.lambdas.invocations].count("download") == 1  # no state machine retry


def test_s3_errors_that_survive_the_retries_fail_the_task_clearly(
    aws: Any, pipeline: LocalPipeline, run_input: Input, s3_faults: Any
) -> None:
    s3_faults.fail("PutObject", forever=(503, "SlowDown"))
    summary = pipeline.run(run_input())
    assert summary["status"] == "FAILED"
    assert summary["error"]["type"] == "StorageUnavailableError"
    assert f"cannot write s3://{ARTIFACTS}/{DATASET_KEY}" in summary["error"]["message"]
    assert "SlowDown" in summary["error"]["message"]
    # 5 SDK attempts in each of 3 invocations (the ASL retries StorageUnavailableError twice)
    assert s3_faults.calls["PutObject"] == 15
    assert stores_empty(aws) == NOTHING_WRITTEN


def test_a_conditional_write_still_in_flight_elsewhere_is_retried_not_taken_as_present(
    aws: Any, s3_faults: Any
) -> None:
    # 409 ConditionalRequestConflict: another If-None-Match write of the key has not finished yet
    s3_faults.fail("PutObject", (409, "ConditionalRequestConflict"))
    target = target_for(f"s3://{ARTIFACTS}/{DATASET_KEY}")
    target.write_bytes(IRIS)
    assert target.read_bytes() == IRIS
    assert s3_faults.calls["PutObject"] == 2
