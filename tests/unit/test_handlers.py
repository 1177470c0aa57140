"""Each handler runs when its output is missing, and returns "present" without touching anything when it is there."""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from mlpipe.exceptions import IntegrityError, InvalidRequestError, MissingInputError
from mlpipe.steps import TASKS
from tests.conftest import ARTIFACTS, MODELS, SAMPLE, s3_keys, s3_versions

Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]
DATE = "2026-11-25"
DATASET = f"s3://{ARTIFACTS}/runs/{DATE}/dataset.csv"
MODEL = f"s3://{ARTIFACTS}/runs/{DATE}/model.pkl"
PUBLISHED = f"s3://{MODELS}/iris/{DATE}/model.pkl"


def run_event(http_server: Any, **overrides: Any) -> dict[str, Any]:
    event = {
        "run_date": DATE,
        "source_url": http_server.url(),
        "dataset_uri": DATASET,
        "model_uri": MODEL,
        "published_uri": PUBLISHED,
        "hyperparameters": {},
        "cv_folds": 5,
        "max_source_bytes": 1_000_000,
    }
    return event | overrides


def test_download_fetches_the_dataset_when_missing(aws: Any, http_server: Any, invoke: Invoke) -> None:
    result = invoke("download", run_event(http_server))
    assert result["state"] == "ran"
    assert result["target"] == DATASET
    assert result["rows"] == 150
    body = aws.get_object(Bucket=ARTIFACTS, Key=f"runs/{DATE}/dataset.csv")["Body"].read()
    assert body == SAMPLE.read_bytes()


def test_download_reports_present_without_fetching(aws: Any, http_server: Any, invoke: Invoke) -> None:
    aws.put_object(Bucket=ARTIFACTS, Key=f"runs/{DATE}/dataset.csv", Body=b"already here")
    result = invoke("download", run_event(http_server))
    assert result == {"state": "present", "target": DATASET}
    assert http_server.requests == []
    assert aws.get_object(Bucket=ARTIFACTS, Key=f"runs/{DATE}/dataset.csv")["Body"].read() == b"already here"


def test_train_fits_an_svm_and_writes_model_and_metrics(aws: Any, http_server: Any, invoke: Invoke) -> None:
    invoke("download", run_event(http_server))
    result = invoke("train", run_event(http_server))
    assert result["state"] == "ran"
    assert result["target"] == MODEL
    model = pickle.loads(aws.get_object(Bucket=ARTIFACTS, Key=f"runs/{DATE}/model.pkl")["Body"].read())
    metrics = json.loads(aws.get_object(Bucket=ARTIFACTS, Key=f"runs/{DATE}/metrics.json")["Body"].read())
    assert type(model).__name__ == "Pipeline"
    assert type(model.named_steps["classifier"]).__name__ == "SVC"
    assert metrics["rows"] == 150
    assert metrics["classes"] == ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
    assert metrics["training_accuracy"] > 0.95
    assert 0.9 < metrics["cv_accuracy"]["mean"] <= 1.0
    assert len(metrics["cv_accuracy"]["scores"]) == 5
    assert metrics["scikit_learn_version"]
    assert metrics["model_sha256"] == result["sha256"]


def test_train_passes_hyperparameters_to_the_svc(aws: Any, http_server: Any, invoke: Invoke) -> None:
    invoke("download", run_event(http_server))
    invoke("train", run_event(http_server, hyperparameters={"C": 0.5, "kernel": "linear"}))
    model = pickle.loads(aws.get_object(Bucket=ARTIFACTS, Key=f"runs/{DATE}/model.pkl")["Body"].read())
    svc = model.named_steps["classifier"]
    assert (svc.C, svc.kernel) == (0.5, "linear")


def test_train_reports_present_without_reading_the_dataset(aws: Any, http_server: Any, invoke: Invoke) -> None:
    aws.put_object(Bucket=ARTIFACTS, Key=f"runs/{DATE}/model.pkl", Body=b"model")
    # A complete model: its card records its sha256
    card = {"model_sha256": hashlib.sha256(b"model").hexdigest(), "cv_accuracy": {"mean": 0.9}, "classes": ["a", "b"]}
    aws.put_object(Bucket=ARTIFACTS, Key=f"runs/{DATE}/metrics.json", Body=json.dumps(card).encode())
    # No dataset exists: a train that looked at its input would fail. The gate's numbers come from the card.
    result = invoke("train", run_event(http_server))
    assert (result["state"], result["target"], result["gate"]["cv_accuracy"]) == ("present", MODEL, 0.9)
    assert s3_keys(aws, ARTIFACTS) == [f"runs/{DATE}/metrics.json", f"runs/{DATE}/model.pkl"]


def test_train_without_its_dataset_fails_with_missing_input(aws: Any, http_server: Any, invoke: Invoke) -> None:
    with pytest.raises(MissingInputError, match=r"dataset\.csv does not exist"):
        invoke("train", run_event(http_server))
    assert s3_keys(aws, ARTIFACTS) == []


def test_upload_publishes_a_model_that_predicts_iris(aws: Any, http_server: Any, invoke: Invoke) -> None:
    event = run_event(http_server)
    for name in TASKS[: TASKS.index("upload")]:
        invoke(name, event)
    result = invoke("upload", event)
    assert result["state"] == "ran"
    assert result["target"] == PUBLISHED
    published = aws.get_object(Bucket=MODELS, Key=f"iris/{DATE}/model.pkl")
    assert published["Metadata"]["sha256"] == result["sha256"]
    model = pickle.loads(published["Body"].read())
    rows = [line.split(",") for line in SAMPLE.read_text().splitlines() if line]
    predictions = model.predict([[float(v) for v in row[:4]] for row in rows])
    accuracy = sum(p == row[4] for p, row in zip(predictions, rows, strict=True)) / len(rows)
    assert accuracy > 0.95
    assert json.loads(aws.get_object(Bucket=MODELS, Key=f"iris/{DATE}/metrics.json")["Body"].read())["rows"] == 150


def test_upload_reports_present_without_reading_the_model(aws: Any, http_server: Any, invoke: Invoke) -> None:
    aws.put_object(Bucket=MODELS, Key=f"iris/{DATE}/model.pkl", Body=b"published")
    card = {"model_sha256": hashlib.sha256(b"published").hexdigest()}  # complete: the card records its sha256
    aws.put_object(Bucket=MODELS, Key=f"iris/{DATE}/metrics.json", Body=json.dumps(card).encode())
    # No model exists upstream: an upload that looked at its input would fail.
    assert invoke("upload", run_event(http_server)) == {"state": "present", "target": PUBLISHED}
    assert s3_versions(aws, MODELS, f"iris/{DATE}/model.pkl") == 1


def test_upload_refuses_a_model_that_does_not_match_its_sha256(aws: Any, http_server: Any, invoke: Invoke) -> None:
    event = run_event(http_server)
    for name in TASKS[: TASKS.index("upload")]:
        invoke(name, event)
    aws.put_object(Bucket=ARTIFACTS, Key=f"runs/{DATE}/model.pkl", Body=b"tampered")
    with pytest.raises(IntegrityError, match="corrupted or replaced"):
        invoke("upload", event)
    assert s3_keys(aws, MODELS) == []


def test_upload_without_a_model_fails_with_missing_input(aws: Any, http_server: Any, invoke: Invoke) -> None:
    with pytest.raises(MissingInputError, match=r"model\.pkl does not exist"):
        invoke("upload", run_event(http_server))


def test_tasks_refuse_unknown_event_fields(aws: Any, http_server: Any, invoke: Invoke) -> None:
    with pytest.raises(InvalidRequestError, match=r"unknown field.*datset_uri"):
        invoke("download", run_event(http_server) | {"datset_uri": DATASET})


def test_plan_starts_at_download_when_nothing_exists(aws: Any, http_server: Any, invoke: Invoke) -> None:
    plan = invoke(
        "plan",
        {
            "run_date": DATE,
            "source_url": http_server.url(),
            "artifact_root": f"s3://{ARTIFACTS}/runs",
            "publish_uri": f"s3://{MODELS}/iris",
        },
    )
    assert plan["start_at"] == "download"
    ids = {task: entry["identity"] for task, entry in plan["run"]["identities"].items()}
    assert plan["run"]["dataset_uri"] == f"s3://{ARTIFACTS}/runs/{DATE}/{ids['download']}/dataset.csv"
    assert plan["run"]["published_uri"] == f"s3://{MODELS}/iris/iris/{DATE}/{ids['upload']}/model.pkl"
    assert {name: task["state"] for name, task in plan["tasks"].items()} == dict.fromkeys(TASKS, "pending")


def test_report_marks_the_failed_task_and_what_did_not_run(invoke: Invoke) -> None:
    state = {
        "run": {"run_date": DATE},
        "failed_task": "train",
        "tasks": {
            "download": {"state": "ran", "target": "d"},
            "train": {"state": "pending", "target": "m"},
            "upload": {"state": "pending", "target": "p"},
        },
        "error": {
            "Error": "TrainingError",
            "Cause": json.dumps({"errorType": "TrainingError", "errorMessage": "it broke"}),
        },
    }
    report = invoke("report", state)
    assert report["summary"] == {
        "status": "FAILED",
        "model": None,
        "run_date": DATE,
        "tasks": {
            "download": {"state": "ran", "target": "d"},
            "train": {"state": "failed", "target": "m"},
            "upload": {"state": "not_run", "target": "p"},
        },
        "gate": None,
        "champion": None,
        "error": {"task": "train", "type": "TrainingError", "message": "it broke"},
    }
    assert json.loads(report["cause"])["error"]["message"] == "it broke"
