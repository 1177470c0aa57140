"""Rewrite the task events in events/ from what the plan makes of events/execution.json.

    .venv/bin/python tools/regenerate_events.py

download.json, train.json, upload.json and promote.json are the run object the state machine
sends every task (less the execution id); report.json is a finished run's state.
tests/unit/test_events.py fails when they drift from the plan.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from mlpipe.steps import OUTPUTS, STEPS
from pipeline_local.cli import main

EVENTS = Path(__file__).resolve().parents[1] / "events"


def write(name: str, value: object) -> None:
    """Write ``events/<name>`` as indented JSON."""
    (EVENTS / name).write_text(json.dumps(value, indent=2) + "\n")


if __name__ == "__main__":
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["invoke", "plan", str(EVENTS / "execution.json"), "--offline"]) == 0
    run = json.loads(out.getvalue())["run"]
    run.pop("execution_id", None)
    for step in STEPS:
        if step.needs:  # its event is the run object
            write(f"{step.name}.json", run)
    report = json.loads((EVENTS / "report.json").read_text())
    report["run"] = run
    for task, output in OUTPUTS.items():
        report["tasks"][task]["target"] = run[output.field]
    write("report.json", report)
    print("events/ rewritten from the plan of events/execution.json")
