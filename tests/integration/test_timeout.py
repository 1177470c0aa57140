"""The execution-level timeout (the ASL's TimeoutSeconds, the template's ExecutionTimeoutSeconds) ends a run that
outlives it as TIMED_OUT with States.Timeout, which is what FailedRunsAlarm's ExecutionsTimedOut counts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline_local.runner import ASL_PATH, LocalPipeline


def test_an_execution_that_outlives_its_timeout_ends_timed_out(
    aws: Any, run_input: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    # Given the real ASL with a 1 s execution timeout, and a plan step that takes longer
    definition = tmp_path / "pipeline.asl.json"
    definition.write_text(ASL_PATH.read_text().replace("${ExecutionTimeoutSeconds}", "1"))
    pipeline = LocalPipeline(retry_delay_scale=0.0, asl_path=definition)
    release = threading.Event()

    def slow_plan(event: Any, context: Any) -> dict[str, Any]:
        release.wait(10)
        raise RuntimeError("released after the test")  # touches nothing: the execution is over by then

    pipeline.lambdas.handlers["plan"] = slow_plan
    try:
        with pipeline.lambdas.active():
            arn = pipeline.start(run_input())
            deadline = time.monotonic() + 10
            while (status := pipeline.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
                assert time.monotonic() < deadline, "the execution did not time out"
                time.sleep(0.05)
    finally:
        release.set()
    # Then it ended as timed out, at the execution level, while the plan was still running. (AWS records an
    # ExecutionTimedOut event with error States.Timeout; moto 5.2.5 sets the status but adds no such event.)
    assert status["status"] == "TIMED_OUT"
    assert [name for name, _ in pipeline.lambdas.invocations] == ["plan"]
    assert "ExecutionSucceeded" not in {event["type"] for event in pipeline.history(arn)}
