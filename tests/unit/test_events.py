"""The sample events in events/ are what the functions accept, and each runs without Docker."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from mlpipe.steps import FUNCTIONS
from pipeline_local.cli import main
from tests.conftest import REPO

EVENTS = REPO / "events"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_runs_its_event_file_offline(function: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invoke", function, str(EVENTS / f"{function}.json"), "--offline"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    if function == "plan":
        assert result["start_at"] == "download"
    elif function == "report":
        assert result["summary"]["status"] == "SUCCEEDED"
    elif function == "promote":
        assert result["promoted"] is True
    else:
        assert result["state"] == "ran"


@pytest.mark.parametrize("name", ["execution.json", "schedule.json"])
def test_state_machine_inputs_are_plan_events_too(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invoke", "plan", str(EVENTS / name), "--offline"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["run"]["run_date"] == "2026-11-25"
    # The task events are the run this input plans (less the execution id), so they stay in step with the
    # plan: tools/regenerate_events.py rewrites them.
    task_event = json.loads((EVENTS / "download.json").read_text())
    assert planned["run"] | {"execution_id": None} == task_event | {"execution_id": None}
    for task in ("train", "upload", "promote"):
        assert json.loads((EVENTS / f"{task}.json").read_text()) == task_event
    report = json.loads((EVENTS / "report.json").read_text())
    assert report["run"] == task_event


def test_a_bad_event_file_is_reported_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    assert main(["invoke", "download", str(path)]) == 2
    assert "cannot read the event file" in capsys.readouterr().err


def test_the_command_leaves_the_console_log_setting_behind_it(capsys: pytest.CaptureFixture[str]) -> None:
    # main() runs in-process here: the readable-logs switch must not leak into the functions' JSON logs later
    assert "MLPIPE_CONSOLE_ERRORS" not in os.environ
    assert main(["invoke", "plan", str(EVENTS / "plan.json"), "--offline"]) == 0
    assert "download  pending (will run)" in capsys.readouterr().err
    assert "MLPIPE_CONSOLE_ERRORS" not in os.environ


def test_backfill_input_is_expanded_by_the_plan_function_as_the_backfill_asl_calls_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asl = json.loads((REPO / "statemachine" / "backfill.asl.json").read_text())
    payload = asl["States"]["Expand the dates"]["Parameters"]["Payload"]
    assert payload == {"backfill.$": "$", "default_max_concurrency": "${BackfillMaxConcurrency}"}
    event = tmp_path / "expand.json"
    backfill = json.loads((EVENTS / "backfill.json").read_text())
    event.write_text(json.dumps({"backfill": backfill, "default_max_concurrency": "2"}))
    assert main(["invoke", "plan", str(event)]) == 0
    expanded = json.loads(capsys.readouterr().out)
    assert expanded["max_concurrency"] == 2
    assert [run["run_date"] for run in expanded["runs"]] == [f"2026-11-0{day}" for day in range(1, 8)]
    assert expanded["runs"][0]["input"] == backfill["input"] | {"run_date": "2026-11-01"}
