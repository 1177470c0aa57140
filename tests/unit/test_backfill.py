"""mlpipe.backfill: the range of dates, the runs the Map starts, and the report of their results."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlpipe.backfill import (
    DEFAULT_MAX_CONCURRENCY,
    MAX_CAUSE_CHARS,
    MAX_DATES,
    backfill_dates,
    build_backfill_report,
    expand_backfill,
    outcome,
    run_summary,
)
from mlpipe.exceptions import InvalidRequestError
from mlpipe.report import build_report
from mlpipe.steps import TASKS


def _summary(run_date: str, *states: str) -> dict[str, Any]:
    tasks = {
        name: {"state": state, "target": f"s3://b/{run_date}/{name}"} for name, state in zip(TASKS, states, strict=True)
    }
    return {"status": "SUCCEEDED", "run_date": run_date, "tasks": tasks, "error": None}


def _failed_child(run_date: str) -> dict[str, Any]:
    """A Map iteration whose child failed in train, as the ASL's Catch records it (the AWS spelling)."""
    state = {
        "run": {"run_date": run_date},
        "tasks": {"download": {"state": "ran", "target": "d"}, "train": {"state": "pending", "target": "m"}},
        "failed_task": "train",
        "error": {"Error": "InvalidDatasetError", "Cause": json.dumps({"errorMessage": "bad row 3"})},
    }
    child_cause = build_report(state)["cause"]
    describe = {"ExecutionArn": "arn:x", "Status": "FAILED", "Error": "InvalidDatasetError", "Cause": child_cause}
    return {"run_date": run_date, "error": {"Error": "States.TaskFailed", "Cause": json.dumps(describe)}}


def test_dates_include_both_ends_and_cross_month_and_leap_day() -> None:
    assert backfill_dates("2028-02-28", "2028-03-01") == ["2028-02-28", "2028-02-29", "2028-03-01"]
    assert backfill_dates("2026-11-25", "2026-11-25") == ["2026-11-25"]


def test_at_most_366_dates() -> None:
    assert len(backfill_dates("2028-01-01", "2028-12-31")) == MAX_DATES == 366
    with pytest.raises(InvalidRequestError, match="367 dates; at most 366"):
        backfill_dates("2026-01-01", "2027-01-02")


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-11-25", "2026-11-24", r"to \(2026-11-24\) is before its from \(2026-11-25\)"),
        ("2026-02-30", "2026-03-01", "the backfill's from: run_date '2026-02-30' is not a valid date"),
        ("2026-11-01", "20261102", "the backfill's to: run_date '20261102' is not a date YYYY-MM-DD"),
        (20261101, "2026-11-02", "the backfill's from: run_date must be a string"),
    ],
)
def test_bad_ranges_are_refused_naming_the_field(start: Any, end: Any, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        expand_backfill({"from": start, "to": end})


def test_expand_lists_one_run_per_date_with_the_shared_input() -> None:
    expanded = expand_backfill(
        {"from": "2026-11-01", "to": "2026-11-02", "max_concurrency": 3, "input": {"estimator": "random_forest"}}
    )
    assert expanded == {
        "runs": [
            {"run_date": "2026-11-01", "input": {"estimator": "random_forest", "run_date": "2026-11-01"}},
            {"run_date": "2026-11-02", "input": {"estimator": "random_forest", "run_date": "2026-11-02"}},
        ],
        "max_concurrency": 3,
    }


def test_max_concurrency_defaults_to_the_substituted_parameter_then_the_constant() -> None:
    request = {"from": "2026-11-01", "to": "2026-11-01"}
    assert expand_backfill(request, default_max_concurrency="5")["max_concurrency"] == 5
    assert expand_backfill(request)["max_concurrency"] == DEFAULT_MAX_CONCURRENCY


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"from": "2026-11-01"}, "lacks to"),
        ({"from": "2026-11-01", "to": "2026-11-01", "max_concurrency": 0}, "max_concurrency must be an integer"),
        ({"from": "2026-11-01", "to": "2026-11-01", "max_concurrency": True}, "max_concurrency must be an integer"),
        (
            {"from": "2026-11-01", "to": "2026-11-01", "until": "x"},
            r"unknown field\(s\) in the backfill request: until",
        ),
        ({"from": "2026-11-01", "to": "2026-11-01", "input": {"run_date": "2026-01-01"}}, "may not set run_date"),
        ({"from": "2026-11-01", "to": "2026-11-01", "input": {"estimater": "svc"}}, "backfill's input: estimater"),
        ({"from": "2026-11-01", "to": "2026-11-01", "input": []}, "input must be a JSON object"),
        ([], "must be a JSON object"),
    ],
)
def test_bad_requests_are_refused_before_anything_starts(request_: Any, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        expand_backfill(request_)


def test_outcome_of_a_date() -> None:
    assert outcome(_summary("d", "present", "present", "present")) == "present"
    assert outcome(_summary("d", "not_run", "present", "present")) == "present"
    assert outcome(_summary("d", "present", "ran", "ran")) == "ran"
    assert outcome({"status": "FAILED", "tasks": {}}) == "failed"


def test_a_failed_childs_summary_is_recovered_from_its_cause() -> None:
    summary = run_summary(_failed_child("2026-11-03"))
    assert summary["status"] == "FAILED"
    assert summary["run_date"] == "2026-11-03"
    assert summary["error"] == {"task": "train", "type": "InvalidDatasetError", "message": "bad row 3"}
    assert summary["tasks"]["train"]["state"] == "failed"


def test_a_child_that_could_not_start_keeps_the_date_and_the_service_error() -> None:
    result = {"run_date": "2026-11-04", "error": {"Error": "StepFunctions.AccessDeniedException", "Cause": "denied"}}
    summary = run_summary(result)
    assert summary == {
        "status": "FAILED",
        "run_date": "2026-11-04",
        "tasks": {},
        "error": {"type": "StepFunctions.AccessDeniedException", "message": "denied"},
    }


def test_report_lists_dates_in_order_with_totals() -> None:
    results = [
        {"summary": _summary("2026-11-02", "ran", "ran", "ran")},
        _failed_child("2026-11-03"),
        {"summary": _summary("2026-11-01", "present", "present", "present")},
    ]
    report = build_backfill_report(results)
    summary = report["summary"]
    assert summary["status"] == "FAILED"
    assert [run["run_date"] for run in summary["runs"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert summary["totals"] == {"ran": 1, "present": 1, "failed": 1}
    assert json.loads(report["cause"]) == summary


def test_report_succeeds_when_no_date_failed() -> None:
    report = build_backfill_report([{"summary": _summary("2026-11-01", "present", "present", "present")}])
    assert report["summary"]["status"] == "SUCCEEDED"
    assert report["summary"]["totals"] == {"ran": 0, "present": 1, "failed": 0}


def test_a_cause_too_long_for_step_functions_keeps_the_totals_and_counts_what_it_left_out() -> None:
    results = [_failed_child(f"2026-{1 + day // 28:02d}-{1 + day % 28:02d}") for day in range(300)]
    for result in results:  # a long message per date
        cause = json.loads(result["error"]["Cause"])
        inner = json.loads(cause["Cause"])
        inner["error"]["message"] = "x" * 500
        cause["Cause"] = json.dumps(inner)
        result["error"]["Cause"] = json.dumps(cause)
    report = build_backfill_report(results)
    assert len(report["cause"]) <= MAX_CAUSE_CHARS
    cause = json.loads(report["cause"])
    assert cause["totals"] == {"ran": 0, "present": 0, "failed": 300}
    assert cause["failed_runs"]
    assert len(cause["failed_runs"]) + cause["failed_runs_left_out"] == 300
    assert len(report["summary"]["runs"]) == 300
