"""The sample events in events/ are what the functions accept, and each runs without Docker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline_local.cli import main
from tests.conftest import REPO

EVENTS = REPO / "events"


@pytest.mark.parametrize("function", ["plan", "download", "train", "upload", "report"])
def test_each_function_runs_its_event_file_offline(function: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invoke", function, str(EVENTS / f"{function}.json"), "--offline"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    if function == "plan":
        assert result["start_at"] == "download"
    elif function == "report":
        assert result["summary"]["status"] == "SUCCEEDED"
    else:
        assert result["state"] == "ran"


@pytest.mark.parametrize("name", ["execution.json", "schedule.json"])
def test_state_machine_inputs_plan_offline(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = json.loads((EVENTS / name).read_text()) | {
        "artifact_root": "s3://example-mlpipe-artifacts/artifacts",
        "publish_uri": "s3://example-mlpipe-models/iris-svm",
    }
    path = tmp_path / name
    path.write_text(json.dumps(event))
    assert main(["invoke", "plan", str(path), "--offline"]) == 0
    assert json.loads(capsys.readouterr().out)["run"]["run_date"] == "2026-11-25"


def test_a_bad_event_file_is_reported_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    assert main(["invoke", "download", str(path)]) == 2
    assert "cannot read the event file" in capsys.readouterr().err
