"""The seed's scenarios, through the real ASL file on moto's interpreter with the real handlers."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from typing import Any

from mlpipe.steps import TASKS
from pipeline_local.runner import LocalPipeline
from tests.conftest import ARTIFACTS, MODELS, s3_keys, s3_versions
from tests.integration.conftest import (
    DATASET_KEY,
    DATE,
    LINEAGE_KEY,
    METRICS_KEY,
    MODEL_KEY,
    PUBLISHED_KEY,
    run_keys,
    states,
)

Input = Callable[..., dict[str, Any]]


def test_fresh_run_runs_all_three_tasks(aws: Any, pipeline: LocalPipeline, run_input: Input) -> None:
    summary = pipeline.run(run_input())
    assert summary == {
        "status": "SUCCEEDED",
        "model": "iris",
        "run_date": DATE,
        "tasks": {
            "download": {"state": "ran", "target": f"s3://{ARTIFACTS}/{DATASET_KEY}"},
            "train": {"state": "ran", "target": f"s3://{ARTIFACTS}/{MODEL_KEY}"},
            "upload": {"state": "ran", "target": f"s3://{MODELS}/{PUBLISHED_KEY}"},
        },
        "gate": summary["gate"],
        "champion": summary["champion"],
        "error": None,
    }
    assert summary["gate"]["passed"] is True
    assert summary["champion"]["promoted"] is True
    assert s3_keys(aws, ARTIFACTS) == sorted([DATASET_KEY, LINEAGE_KEY, METRICS_KEY, MODEL_KEY])
    assert PUBLISHED_KEY in s3_keys(aws, MODELS)


def test_rerun_runs_nothing_and_reports_everything_present(
    aws: Any, pipeline: LocalPipeline, run_input: Input, http_server: Any
) -> None:
    pipeline.run(run_input())
    requests_before = len(http_server.requests)
    summary = pipeline.run(run_input())
    assert summary["status"] == "SUCCEEDED"
    assert states(summary) == dict.fromkeys(TASKS, "present")
    assert len(http_server.requests) == requests_before
    assert [name for name, _ in pipeline.lambdas.invocations].count("train") == 1
    assert s3_versions(aws, MODELS, PUBLISHED_KEY) == 1


def test_deleted_model_and_published_model_are_rebuilt_from_the_dataset(
    aws: Any, pipeline: LocalPipeline, run_input: Input, http_server: Any
) -> None:
    pipeline.run(run_input())
    aws.delete_object(Bucket=ARTIFACTS, Key=MODEL_KEY)
    aws.delete_object(Bucket=MODELS, Key=PUBLISHED_KEY)
    requests_before = len(http_server.requests)
    summary = pipeline.run(run_input())
    assert states(summary) == {"download": "present", "train": "ran", "upload": "ran"}
    assert len(http_server.requests) == requests_before
    assert PUBLISHED_KEY in s3_keys(aws, MODELS)


def test_deleted_dataset_alone_is_not_recreated_when_the_model_is_published(
    aws: Any, pipeline: LocalPipeline, run_input: Input
) -> None:
    pipeline.run(run_input())
    aws.delete_object(Bucket=ARTIFACTS, Key=DATASET_KEY)
    summary = pipeline.run(run_input())
    assert summary["status"] == "SUCCEEDED"
    assert states(summary) == {"download": "not_run", "train": "present", "upload": "present"}
    assert DATASET_KEY not in s3_keys(aws, ARTIFACTS)
    assert [name for name, _ in pipeline.lambdas.invocations].count("download") == 1


def test_failed_train_is_resumed_after_the_fix_reusing_the_dataset(
    aws: Any, pipeline: LocalPipeline, run_input: Input, http_server: Any
) -> None:
    # Given hyperparameters that only the SVM's fit rejects (break_ties needs decision_function_shape='ovr')
    bad = {"break_ties": True, "decision_function_shape": "ovo"}
    failed = pipeline.run(run_input(hyperparameters=bad))
    assert failed["status"] == "FAILED"
    assert states(failed) == {"download": "ran", "train": "failed", "upload": "not_run"}
    assert failed["error"]["type"] == "InvalidHyperparametersError"
    assert "break_ties must be False" in failed["error"]["message"]
    assert s3_keys(aws, ARTIFACTS) == sorted([DATASET_KEY, LINEAGE_KEY])
    assert s3_keys(aws, MODELS) == []
    # When the cause is fixed and the run date is run again
    requests_before = len(http_server.requests)
    resumed = pipeline.run(run_input(hyperparameters={"break_ties": True}))
    # Then the download is reused and train and upload run
    assert resumed["status"] == "SUCCEEDED"
    assert states(resumed) == {"download": "present", "train": "ran", "upload": "ran"}
    assert len(http_server.requests) == requests_before


def test_failed_execution_ends_in_the_fail_state_with_the_error_and_a_json_cause(
    aws: Any, pipeline: LocalPipeline, run_input: Input
) -> None:
    with pipeline.lambdas.active():
        arn = pipeline.start(run_input(hyperparameters={"break_ties": True, "decision_function_shape": "ovo"}))
        pipeline.wait(arn)
    execution = pipeline.sfn.describe_execution(executionArn=arn)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "InvalidHyperparametersError"
    cause = json.loads(execution["cause"])
    assert cause["error"]["task"] == "train"
    entered = [e["stateEnteredEventDetails"]["name"] for e in pipeline.history(arn) if "stateEnteredEventDetails" in e]
    assert entered[-3:] == ["Report the run", "Did the run succeed?", "Pipeline failed"]


def test_plan_failure_reports_every_task_not_run(aws: Any, pipeline: LocalPipeline, run_input: Input) -> None:
    summary = pipeline.run(run_input(run_date="2026-02-30"))
    assert summary["status"] == "FAILED"
    assert summary["error"]["task"] == "plan"
    assert summary["error"]["type"] == "InvalidRequestError"
    assert "2026-02-30" in summary["error"]["message"]
    assert set(states(summary).values()) == {"not_run"}


def test_runs_for_two_dates_are_independent(aws: Any, pipeline: LocalPipeline, run_input: Input) -> None:
    pipeline.run(run_input())
    summary = pipeline.run(run_input(run_date="2026-11-26"))
    assert states(summary) == dict.fromkeys(TASKS, "ran")
    assert run_keys(run_date="2026-11-26")["published"] in s3_keys(aws, MODELS)


def test_published_model_unpickles_and_predicts(aws: Any, pipeline: LocalPipeline, run_input: Input) -> None:
    pipeline.run(run_input())
    model = pickle.loads(aws.get_object(Bucket=MODELS, Key=PUBLISHED_KEY)["Body"].read())
    setosa, virginica = [5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]
    assert list(model.predict([setosa, virginica])) == ["Iris-setosa", "Iris-virginica"]


def test_local_directory_store_behaves_like_s3(tmp_path: Any, pipeline: LocalPipeline, run_input: Input) -> None:
    local = run_input(artifact_root=str(tmp_path / "artifacts"), publish_uri=str(tmp_path / "published"))
    first = pipeline.run(local)
    second = pipeline.run(local)
    assert states(first) == dict.fromkeys(TASKS, "ran")
    assert states(second) == dict.fromkeys(TASKS, "present")
    (published,) = (tmp_path / "published" / "iris" / DATE).glob("published-*/model.pkl")
    assert first["tasks"]["upload"]["target"] == published.as_uri()
    assert (published.parent / "metrics.json").is_file()
