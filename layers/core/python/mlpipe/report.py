"""The run's summary, in the spirit of Luigi's execution summary, from the state machine's final state."""

from __future__ import annotations

import json
from typing import Any

from mlpipe.config import Settings, resolve_run, run_date_for
from mlpipe.exceptions import PipelineError
from mlpipe.gate import FALLBACK_SCORE, score_words
from mlpipe.redaction import redact_text
from mlpipe.sagemaker import failure_type
from mlpipe.steps import GATE, OUTPUTS, TASKS

STATES = ("present", "ran", "failed", "not_run")


def build_report(state: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Turn the state machine's state into ``{"summary": ..., "cause": ...}``.

    ``state`` holds ``run`` and ``tasks`` (from the planning step and the tasks' results; train's
    carries the gate's numbers), ``champion`` (the promote step's result) and, after a failure,
    ``failed_task`` and ``error`` (Step Functions' ``{"Error", "Cause"}``); a failed task ``gate``
    is the quality gate's rejection, reported as ``ModelRejectedError``. A task still
    "pending" when the run ends did not run. ``cause`` is the summary as a JSON string, for the
    Fail state's Cause.

    When the plan failed, ``state`` has the execution's ``input`` instead of a run: with ``settings``
    the run is resolved from it again (pure, no storage touched), so the summary keeps the run date
    and the targets whenever the input allows it (a missing bucket, say), and the date alone otherwise.
    """
    run: dict[str, Any] = state["run"] if isinstance(state.get("run"), dict) else {}
    if not run and settings is not None and "input" in state:
        run = known_run(state["input"], settings)
    planned: dict[str, Any] = state["tasks"] if isinstance(state.get("tasks"), dict) else {}
    if not planned and run:
        planned = {name: {"state": "not_run", "target": run.get(output.field)} for name, output in OUTPUTS.items()}
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
    job = state.get("training_job")
    if isinstance(job, dict) and job.get("name"):  # trained on SageMaker: which job (its log is under its name)
        tasks["train"]["training_job"] = job["name"]
    gate = (planned.get("train") or {}).get("gate") if isinstance(planned.get("train"), dict) else None
    champion = state.get("champion") if isinstance(state.get("champion"), dict) else None
    error = None
    if failed_task == GATE:  # the gate's Choice rejected the model: no Lambda error, the reason (and type) the gate's
        kind = (gate or {}).get("error") or "ModelRejectedError"  # SchemaChangedError when the schema rule refused
        error = {"task": GATE, "type": str(kind), "message": str((gate or {}).get("reason"))}
    elif failed_task or state.get("error"):
        error = {"task": failed_task or "plan", **describe_error(state.get("error") or {})}
    summary = {
        "status": "FAILED" if error else "SUCCEEDED",
        "model": run.get("model"),
        "run_date": run.get("run_date"),
        "tasks": tasks,
        "gate": gate,
        "champion": champion,
        "error": error,
    }
    cause = {key: summary[key] for key in ("error", "tasks", "model", "run_date", "gate", "champion")}
    return {"summary": summary, "cause": json.dumps(cause, allow_nan=False)}


def known_run(execution_input: Any, settings: Settings) -> dict[str, Any]:
    """As much of the run as an execution input gives: the whole run, else only its date, else nothing."""
    try:
        return resolve_run(execution_input, settings).to_event()
    except PipelineError:
        pass
    try:
        if isinstance(execution_input, dict):
            return {"run_date": run_date_for(execution_input, settings)}
    except PipelineError:
        pass
    return {}


def describe_error(error: dict[str, Any]) -> dict[str, str]:
    """``{"type", "message"}`` from Step Functions' ``{"Error", "Cause"}``; Lambda's Cause is JSON.

    A SageMaker training job that failed or stopped fails its ``.sync`` task with ``States.TaskFailed``
    and its DescribeTrainingJob response as the Cause: the type is then the pipeline error its
    FailureReason names (the entry point writes ``Type: message``), else ``TrainingJobFailedError``.
    """
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
    elif isinstance(parsed, dict) and "TrainingJobStatus" in parsed:
        reason = str(parsed.get("FailureReason") or "no FailureReason")
        error_type = failure_type(reason) or "TrainingJobFailedError"
        message = (
            f"SageMaker training job {parsed.get('TrainingJobName')} ended {parsed.get('TrainingJobStatus')}: {reason}"
        )
    return {"type": error_type, "message": redact_text(message)}  # a message that quotes a secret URL never shows it


def summary_from_failure(error: str | None, cause: str | None) -> dict[str, Any]:
    """The summary of a failed execution from its Error and Cause: the Cause ``build_report`` wrote, read back.

    An execution that did not reach the Fail state (the report step itself failed, or it was
    stopped) has another Cause: the summary then has no tasks, and its error is that Error and Cause.
    """
    try:
        parsed = json.loads(cause or "")
        return {
            "status": "FAILED",
            "model": parsed.get("model"),
            "run_date": parsed.get("run_date"),
            "tasks": parsed["tasks"],
            "gate": parsed.get("gate"),
            "champion": parsed.get("champion"),
            "error": parsed["error"],
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return {
            "status": "FAILED",
            "run_date": None,
            "tasks": {},
            "error": {"type": error or "FAILED", "message": cause or ""},
        }


def decision_lines(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """``[(label, text)]``, one each: the model's score and the champion's, what the gate decided, what the
    promotion decided; for the text summary of a run."""
    gate = summary.get("gate") if isinstance(summary.get("gate"), dict) else None
    champion = summary.get("champion") if isinstance(summary.get("champion"), dict) else None
    error = summary.get("error") if isinstance(summary.get("error"), dict) else None
    if gate is None:
        score = "no model was trained or checked in this run"
        decided = "not run (the model was published already, or the run stopped before it)"
    else:
        name = str(gate.get("score_name") or FALLBACK_SCORE)
        ours = gate.get("score", gate.get("cv_accuracy"))
        theirs = gate.get("champion_score", gate.get("champion_cv_accuracy"))
        theirs_name = str(gate.get("champion_score_name") or name)
        theirs_text = (  # after a change of task the champion's score is another measure: named, not compared
            _number(theirs) if theirs_name == name else f"{score_words(theirs_name)} {_number(theirs)} (not comparable)"
        )
        score = f"{score_words(name)} {_number(ours)}; " + (
            f"the champion {gate.get('champion_identity')}'s {theirs_text}"
            if gate.get("champion_identity")
            else "no champion yet"
        )
        rejected = bool(error and error.get("task") == GATE)
        decided = f"{'refused' if rejected else 'passed'}: {gate.get('reason')}"
    if champion is not None:
        promoted = str(champion.get("reason"))
    elif error and error.get("task") == "promote":
        promoted = f"failed: {error.get('type')}: {error.get('message')}"
    else:
        promoted = "not run: the champion is unchanged"
    lines = [("score", score), ("gate", decided), ("promotion", promoted)]
    drift = gate.get("drift") if gate is not None else None
    if isinstance(drift, dict):  # the largest drift from the champion's data contract (mlpipe.contract)
        limit = gate.get("max_drift") if gate is not None and gate.get("max_drift") is not None else "off"
        text = f"largest {drift.get('measure') or 'drift'} {_number(drift.get('value'))} on {drift.get('feature')!r}"
        lines.insert(2, ("drift", f"{text}, against the champion's data contract (max_drift {limit})"))
    return lines


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"
