"""Backfill: one pipeline run per date of a range, and the summary of them all.

``expand_backfill`` turns a backfill request into the runs the backfill state machine's Map starts
(one child execution of the pipeline per date); ``build_backfill_report`` turns the Map's results
back into one summary with totals. A date whose child failed is recovered from the child's Cause,
which is the run's summary (see ``mlpipe.report``), so each date reads as ``pipeline run --json``
prints it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from mlpipe.config import INPUT_FIELDS, check_object, parse_run_date
from mlpipe.exceptions import InvalidRequestError
from mlpipe.report import summary_from_failure

MAX_DATES = 366
# The template's BackfillMaxConcurrency default (tests/unit/test_template.py keeps them equal): the
# default TrainReservedConcurrency, so that children do not queue for trainings by default.
DEFAULT_MAX_CONCURRENCY = 2
# Step Functions caps an execution's Cause at 32768 characters (the Fail state's Cause).
MAX_CAUSE_CHARS = 32768
REQUEST_FIELDS = frozenset({"from", "to", "max_concurrency", "input"})
# What the backfill sets for each date itself (its run date, and the link of the child to the backfill's
# execution); the rest of a pipeline execution's input is shared by all dates.
PER_DATE_FIELDS = frozenset({"run_date", "scheduled_time", "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"})
OUTCOMES = ("ran", "present", "failed")


def backfill_dates(start: Any, end: Any) -> list[str]:
    """Every date from ``start`` to ``end`` (both included, ``YYYY-MM-DD``), at most MAX_DATES of them."""
    first = _date(start, "from")
    last = _date(end, "to")
    if last < first:
        raise InvalidRequestError(f"the backfill's to ({last}) is before its from ({first}): give to >= from")
    count = (last - first).days + 1
    if count > MAX_DATES:
        raise InvalidRequestError(
            f"the backfill from {first} to {last} has {count} dates; at most {MAX_DATES} are allowed: split it"
        )
    return [(first + dt.timedelta(days=offset)).isoformat() for offset in range(count)]


def expand_backfill(request: Any, *, default_max_concurrency: Any = None) -> dict[str, Any]:
    """``{"from", "to", "max_concurrency"?, "input"?}`` to ``{"runs": [{"run_date", "input"}], "max_concurrency"}``.

    ``input`` holds the pipeline execution's options shared by every date (anything a pipeline
    execution takes but PER_DATE_FIELDS); each run's input is it plus the date.
    ``max_concurrency`` defaults to ``default_max_concurrency`` (the BackfillMaxConcurrency
    parameter, a string when it comes through DefinitionSubstitutions), else DEFAULT_MAX_CONCURRENCY.
    Everything is checked before any run starts: InvalidRequestError names what is wrong.
    """
    check_object(request, REQUEST_FIELDS, "the backfill request")
    for name in ("from", "to"):
        if request.get(name) is None:
            raise InvalidRequestError(f"the backfill request lacks {name} (YYYY-MM-DD)")
    dates = backfill_dates(request["from"], request["to"])
    options = {} if request.get("input") is None else request["input"]
    if not isinstance(options, dict):
        raise InvalidRequestError(f"the backfill's input must be a JSON object, got {type(options).__name__}")
    per_date = sorted(set(options) & PER_DATE_FIELDS)
    if per_date:
        raise InvalidRequestError(
            f"the backfill's input may not set {', '.join(per_date)}: the backfill sets it for each date"
        )
    unknown = sorted(set(options) - INPUT_FIELDS)
    if unknown:
        raise InvalidRequestError(
            f"unknown field(s) in the backfill's input: {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(INPUT_FIELDS - PER_DATE_FIELDS))}"
        )
    max_concurrency = request.get("max_concurrency")
    if max_concurrency is None:
        default = DEFAULT_MAX_CONCURRENCY if default_max_concurrency is None else default_max_concurrency
        max_concurrency = _max_concurrency(default, "BackfillMaxConcurrency")
    else:
        max_concurrency = _max_concurrency(max_concurrency, "max_concurrency")
    runs = [{"run_date": date, "input": {**options, "run_date": date}} for date in dates]
    return {"runs": runs, "max_concurrency": max_concurrency}


def outcome(summary: Mapping[str, Any]) -> str:
    """A date's outcome: "present" when none of its tasks ran, "ran" when one did and it succeeded, else "failed"."""
    if summary.get("status") != "SUCCEEDED":
        return "failed"
    tasks = summary.get("tasks") or {}
    ran = any(isinstance(task, dict) and task.get("state") == "ran" for task in tasks.values())
    return "ran" if ran else "present"


def run_summary(result: Any) -> dict[str, Any]:
    """One date's summary from its Map iteration's result.

    A child that succeeded gives ``{"summary": <its output>}``. A caught failure gives
    ``{"run_date", "error": {"Error", "Cause"}}``: when the child execution failed, ``Error`` is
    ``States.TaskFailed`` and ``Cause`` is the child's DescribeExecution response as JSON, whose
    own ``Cause`` is the run's summary; when the child could not be started, ``Cause`` is the
    service's message.
    """
    if not isinstance(result, dict):
        return summary_from_failure("BackfillResultError", f"not a Map iteration result: {result!r}")
    if isinstance(result.get("summary"), dict):
        return dict(result["summary"])
    run_date = result.get("run_date")
    error: dict[str, Any] = result["error"] if isinstance(result.get("error"), dict) else {}
    error_type, cause = error.get("Error"), error.get("Cause")
    child = _json_object(cause)
    if child is not None and "Status" in child:  # the child's DescribeExecution response, as the API spells it
        error_type = child.get("Error") or error_type
        cause = child.get("Cause")
    summary = summary_from_failure(error_type, cause)
    if summary.get("run_date") is None:
        summary["run_date"] = run_date
    return summary


def build_backfill_report(results: Any) -> dict[str, Any]:
    """``{"summary": {"status", "runs", "totals"}, "cause": <JSON for the Fail state>}`` from the Map's results.

    The summary lists every date's run summary in date order. ``cause`` is the summary as JSON when
    it fits in MAX_CAUSE_CHARS; otherwise it keeps the status, the totals and as many failed dates'
    summaries as fit, and counts the failed dates it had to leave out.
    """
    runs = [run_summary(result) for result in (results if isinstance(results, list) else [])]
    runs.sort(key=lambda run: str(run.get("run_date") or ""))
    totals = dict.fromkeys(OUTCOMES, 0)
    for run in runs:
        totals[outcome(run)] += 1
    status = "FAILED" if totals["failed"] or not isinstance(results, list) else "SUCCEEDED"
    summary = {"status": status, "runs": runs, "totals": totals}
    cause = json.dumps(summary, allow_nan=False)
    if len(cause) > MAX_CAUSE_CHARS:
        failed: list[dict[str, Any]] = []
        compact = {"status": status, "totals": totals, "failed_runs": failed, "failed_runs_left_out": 0}
        for run in (run for run in runs if outcome(run) == "failed"):
            failed.append(run)
            if len(json.dumps(compact, allow_nan=False)) > MAX_CAUSE_CHARS - 100:
                failed.pop()
                compact["failed_runs_left_out"] = totals["failed"] - len(failed)
                break
        cause = json.dumps(compact, allow_nan=False)
    return {"summary": summary, "cause": cause}


def _date(value: Any, name: str) -> dt.date:
    try:
        return parse_run_date(value)
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"the backfill's {name}: {exc}") from exc


def _max_concurrency(value: Any, name: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():  # a DefinitionSubstitution is a string
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError(f"{name} must be an integer of at least 1, got {value!r}")
    return value


def _json_object(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
