"""The run's summary, in the spirit of Luigi's execution summary, from the state machine's final state."""

from __future__ import annotations

import json
from typing import Any

from mlpipe.planning import TASKS

STATES = ("present", "ran", "failed", "not_run")


def build_report(state: dict[str, Any]) -> dict[str, Any]:
    """Turn the state machine's state into ``{"summary": ..., "cause": ...}``.

    ``state`` holds ``run`` and ``tasks`` (from the planning step and the tasks' results) and, after
    a failure, ``failed_task`` and ``error`` (Step Functions' ``{"Error", "Cause"}``). A task still
    "pending" when the run ends did not run. ``cause`` is the summary as a JSON string, for the
    Fail state's Cause.
    """
    run: dict[str, Any] = state["run"] if isinstance(state.get("run"), dict) else {}
    planned: dict[str, Any] = state["tasks"] if isinstance(state.get("tasks"), dict) else {}
    failed_task = state.get("failed_task")
    tasks = {}
    for name in TASKS:
        entry: dict[str, Any] = planned[name] if isinstance(planned.get(name), dict) else {}
        task_state = entry.get("state")
        if name == failed_task:
            task_state = "failed"
        elif task_state not in STATES:
            task_state = "not_run"
        tasks[name] = {"state": task_state, "target": entry.get("target")}
    error = None
    if failed_task or state.get("error"):
        error = {"task": failed_task or "plan", **describe_error(state.get("error") or {})}
    summary = {
        "status": "FAILED" if error else "SUCCEEDED",
        "run_date": run.get("run_date"),
        "tasks": tasks,
        "error": error,
    }
    return {"summary": summary, "cause": json.dumps({"error": error, "tasks": tasks, "run_date": summary["run_date"]})}


def describe_error(error: dict[str, Any]) -> dict[str, str]:
    """``{"type", "message"}`` from Step Functions' ``{"Error", "Cause"}``; Lambda's Cause is JSON."""
    error_type = str(error.get("Error") or "UnknownError")
    cause = error.get("Cause")
    message = cause if isinstance(cause, str) else ""
    try:
        parsed = json.loads(message)
    except (TypeError, ValueError):
        parsed = None
    if isinstance(parsed, dict) and "errorMessage" in parsed:
        message = str(parsed["errorMessage"])
        error_type = str(parsed.get("errorType") or error_type)
    return {"type": error_type, "message": message}


def summary_from_failure(error: str | None, cause: str | None) -> dict[str, Any]:
    """The summary of a failed execution from its Error and Cause: the Cause ``build_report`` wrote, read back.

    An execution that did not reach the Fail state (the report step itself failed, or it was
    stopped) has another Cause: the summary then has no tasks, and its error is that Error and Cause.
    """
    try:
        parsed = json.loads(cause or "")
        return {
            "status": "FAILED",
            "run_date": parsed.get("run_date"),
            "tasks": parsed["tasks"],
            "error": parsed["error"],
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return {
            "status": "FAILED",
            "run_date": None,
            "tasks": {},
            "error": {"type": error or "FAILED", "message": cause or ""},
        }
