"""The run's summary keeps what is known when the plan failed: the run date, and the targets when it can."""

from __future__ import annotations

from mlpipe.config import Settings, resolve_run
from mlpipe.gate import evaluate
from mlpipe.report import build_report, decision_lines

SETTINGS = Settings(artifact_root="s3://artifacts-bucket/artifacts", publish_uri="s3://models-bucket/iris")
STORAGE_ERROR = {"Error": "StorageError", "Cause": '{"errorMessage": "bucket missing", "errorType": "StorageError"}'}


def test_a_failed_plan_still_reports_the_run_date_and_targets_from_the_input() -> None:
    # Given the state after "Planning failed": the execution's input, no run (a missing bucket, say)
    state = {"input": {"run_date": "2026-02-02"}, "failed_task": "plan", "error": STORAGE_ERROR}
    summary = build_report(state, SETTINGS)["summary"]
    assert summary["run_date"] == "2026-02-02"
    run = resolve_run(state["input"], SETTINGS)
    assert summary["tasks"]["download"] == {"state": "not_run", "target": run.dataset_uri}
    assert summary["tasks"]["upload"]["target"] == run.published_uri
    assert run.published_uri.startswith("s3://models-bucket/iris/iris/2026-02-02/published-")
    assert summary["error"] == {"task": "plan", "type": "StorageError", "message": "bucket missing"}


def test_an_invalid_input_keeps_the_run_date_when_that_part_is_valid() -> None:
    state = {"input": {"run_date": "2026-02-02", "cv_folds": 0}, "failed_task": "plan", "error": STORAGE_ERROR}
    summary = build_report(state, SETTINGS)["summary"]
    assert summary["run_date"] == "2026-02-02"
    assert {task["target"] for task in summary["tasks"].values()} == {None}


def test_an_invalid_run_date_reports_no_date() -> None:
    state = {"input": {"run_date": "someday"}, "failed_task": "plan", "error": STORAGE_ERROR}
    assert build_report(state, SETTINGS)["summary"]["run_date"] is None
    assert build_report({"input": 5, "failed_task": "plan"}, SETTINGS)["summary"]["run_date"] is None


def test_the_score_line_names_a_champions_score_of_another_task_instead_of_comparing_it() -> None:
    # Given: a regressor gated against a classifier champion (the gate refuses it: the task changes)
    card = {"task": "regression", "score": {"name": "cv_r2", "value": 0.9314, "std": 0.01, "baseline": -0.01}}
    champion = {
        "identity": "published-c",
        "classes": ["a", "b"],
        "metrics": {"score": 0.9719, "score_name": "cv_accuracy"},
    }
    gate = evaluate(card, champion, model_uri="m", min_cv_accuracy=None, max_regression=None)
    lines = dict(decision_lines({"gate": gate, "error": {"task": "gate"}}))
    # Then: its R² is shown beside the champion's accuracy, named as such and not compared
    assert lines["score"] == "CV R² 0.9314; the champion published-c's CV accuracy 0.9719 (not comparable)"
    same = evaluate(card, None, model_uri="m", min_cv_accuracy=None, max_regression=None)
    assert dict(decision_lines({"gate": same}))["score"] == "CV R² 0.9314; no champion yet"
