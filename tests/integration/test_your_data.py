"""Your data, your model: real datasets of several shapes, from the source over HTTP to a published model
that predicts held-out rows, through the real handlers (and, for a few, the real ASL)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mlpipe import load_model
from mlpipe.exceptions import (
    IncompatibleModelError,
    IntegrityError,
    InvalidDatasetError,
    InvalidRequestError,
    TrainingTooLargeError,
)
from mlpipe.steps import TASKS
from pipeline_local.lambdas import LambdaContext
from pipeline_local.runner import LocalPipeline
from tests.conftest import ARTIFACTS, MODELS, NOTHING_WRITTEN, stores_empty
from tests.datasets import Case, cases
from tests.integration.conftest import DATE, states

Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]
DATASET = f"s3://{ARTIFACTS}/runs/{DATE}/dataset.csv"
MODEL = f"s3://{ARTIFACTS}/runs/{DATE}/model.pkl"
PUBLISHED = f"s3://{MODELS}/data/{DATE}/model.pkl"


def serve(http_server: Any, case: Case) -> str:
    (http_server.root / f"{case.name}.csv").write_bytes(case.body)
    return str(http_server.url(f"/{case.name}.csv"))


def event(http_server: Any, case: Case, **overrides: Any) -> dict[str, Any]:
    return {
        "run_date": DATE,
        "source_url": serve(http_server, case),
        "dataset_uri": DATASET,
        "model_uri": MODEL,
        "published_uri": PUBLISHED,
        "estimator": case.estimator,
        "hyperparameters": case.hyperparameters,
        "dataset": case.description,
        "cv_folds": 5,
    } | overrides


def run_tasks(invoke: Invoke, task_event: dict[str, Any]) -> None:
    for task in TASKS:
        assert invoke(task, task_event)["state"] == "ran", task


@pytest.mark.parametrize("name", list(cases()))
def test_each_dataset_shape_gives_a_model_that_predicts_held_out_rows(
    name: str, aws: Any, http_server: Any, invoke: Invoke
) -> None:
    case = cases()[name]
    run_tasks(invoke, event(http_server, case))
    model, card = load_model(PUBLISHED)
    predicted = model.predict(case.holdout)
    accuracy = float(np.mean([p == t for p, t in zip(predicted, case.holdout_labels, strict=True)]))
    assert accuracy >= case.min_accuracy, (name, accuracy, card["cv_accuracy"])
    # Fitted on the label values themselves: the classes are the file's labels, with their type.
    assert set(model.classes_.tolist()) == set(case.holdout_labels)
    assert {type(label) for label in model.classes_.tolist()} == {type(case.holdout_labels[0])}
    assert card["classes"] == model.classes_.tolist()
    assert card["estimator"]["name"] == case.estimator
    assert card["input"]["columns"] == list(case.holdout.columns)
    # The card, not hasattr(pipeline, ...), says whether it has probabilities (a Pipeline always has the attribute).
    assert card["input"]["predict_proba"] == hasattr(model.named_steps["classifier"], "predict_proba")
    assert 0.5 < card["cv_accuracy"]["mean"] <= 1.0
    assert card["rows"] == case.rows


def test_a_seed_shaped_model_predicts_label_names(aws: Any, http_server: Any, invoke: Invoke) -> None:
    base = {"run_date": DATE, "source_url": http_server.url(), "dataset_uri": DATASET, "model_uri": MODEL}
    run_tasks(invoke, base | {"published_uri": PUBLISHED})
    model, card = load_model(PUBLISHED)
    assert list(model.predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])) == ["Iris-setosa", "Iris-virginica"]
    assert model.classes_.tolist() == ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
    assert card["input"]["columns"] == ["column_0", "column_1", "column_2", "column_3"]
    assert card["dataset"]["resolved"]["header"]["present"] is False
    assert card["estimator"]["class"] == "sklearn.svm.SVC"


def test_the_card_describes_categories_dropped_columns_and_metrics(aws: Any, http_server: Any, invoke: Invoke) -> None:
    case = cases()["wine_categorical_quoted"]
    run_tasks(invoke, event(http_server, case))
    _, card = load_model(PUBLISHED)
    resolved = card["dataset"]["resolved"]
    assert resolved["kinds"]["region"] == "categorical"
    assert set(resolved["categorical_columns"]["region"]["values"]) == {
        "North, upper",
        'South "deep"',
        "East\nside",
        "West",
    }
    dropped = {d["column"]: d["reason"] for d in resolved["dropped_columns"]}
    assert dropped["batch"].startswith("an id")
    assert dropped["country"].startswith("constant")
    assert card["preprocessing"]["categorical"]["columns"] == ["region"]
    metrics = card["cv_metrics"]
    assert set(metrics["per_class"]) == {"barolo", "grignolino", "barbera"}
    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    assert matrix.sum() == card["rows"]
    assert 0 < metrics["balanced_accuracy"] <= 1
    assert 0 < metrics["macro_f1"] <= 1
    assert set(card["versions"]) == {"python", "scikit_learn", "numpy", "pandas"}


def test_scaling_is_part_of_the_svc_model_and_not_of_the_trees(aws: Any, http_server: Any, invoke: Invoke) -> None:
    case = cases()["wine_uci"]
    run_tasks(invoke, event(http_server, case))
    model, card = load_model(PUBLISHED)
    assert "standard scaling" in card["preprocessing"]["numeric"]["steps"]
    assert card["cv_accuracy"]["mean"] > 0.93  # unscaled, an SVC scores about 0.7 on wine
    numeric = model.named_steps["preprocess"].named_transformers_["numeric"]
    assert "scale" in numeric.named_steps


def test_all_numeric_models_take_plain_arrays_and_dataframes(aws: Any, http_server: Any, invoke: Invoke) -> None:
    case = cases()["wine_uci"]
    run_tasks(invoke, event(http_server, case))
    model, _ = load_model(PUBLISHED)
    rows = case.holdout.to_numpy()
    with pytest.warns(UserWarning, match="feature names"):
        from_array = model.predict(rows)
    assert list(from_array) == list(model.predict(case.holdout))
    assert list(model.predict(rows.tolist()[:3])) == list(from_array[:3])


def test_svc_with_probability_has_predict_proba(aws: Any, http_server: Any, invoke: Invoke) -> None:
    case = cases()["wine_uci"]
    run_tasks(invoke, event(http_server, case, hyperparameters={"probability": True}))
    model, card = load_model(PUBLISHED)
    probabilities = model.predict_proba(case.holdout)
    assert probabilities.shape == (len(case.holdout), 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert card["input"]["predict_proba"] is True


def test_missing_values_are_rejected_by_default_with_line_and_column(
    aws: Any, http_server: Any, invoke: Invoke
) -> None:
    case = cases()["breast_cancer_missing"]
    with pytest.raises(InvalidDatasetError, match=r"line \d+, column \d+: missing value"):
        invoke("download", event(http_server, case, dataset={}))
    assert stores_empty(aws) == NOTHING_WRITTEN


def test_train_refuses_a_fit_that_cannot_end_in_the_time_the_function_has_left(
    aws: Any, http_server: Any, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a stored dataset, and a train function with 20 s left (less than the margin kept for writing)
    base = {"run_date": DATE, "source_url": http_server.url(), "dataset_uri": DATASET, "model_uri": MODEL}
    assert invoke("download", base)["state"] == "ran"
    monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", lambda self: 20_000)
    # When it trains, it fails at once, from the handler's context, and writes nothing
    with pytest.raises(TrainingTooLargeError, match=r"estimated at 0 s, but there are 20 s left"):
        invoke("train", base | {"estimator": "auto"})
    assert [key for key in stores_empty(aws)[ARTIFACTS] if "model" in key or "metrics" in key] == []


def test_a_label_column_that_is_not_in_the_header_lists_the_columns(aws: Any, http_server: Any, invoke: Invoke) -> None:
    case = cases()["breast_cancer_semicolon"]
    with pytest.raises(InvalidDatasetError, match="'quality' is not a column of the file; its header has: mean radius"):
        invoke("download", event(http_server, case, dataset={"delimiter": ";", "label_column": "quality"}))
    assert stores_empty(aws) == NOTHING_WRITTEN


def test_a_class_with_fewer_rows_than_folds_is_named(aws: Any, http_server: Any, invoke: Invoke) -> None:
    body = b"a,b,label\n" + b"".join(f"{i},{i % 3},{'x' if i < 20 else 'rare'}\n".encode() for i in range(23))
    (http_server.root / "rare.csv").write_bytes(body)
    with pytest.raises(InvalidDatasetError, match="class 'rare' has 3 rows, fewer than the 5 folds"):
        invoke("download", event(http_server, cases()["wine_uci"], source_url=http_server.url("/rare.csv"), dataset={}))
    assert stores_empty(aws) == NOTHING_WRITTEN


def test_a_labels_allow_list_refuses_an_unknown_label_with_line_and_column(
    aws: Any, http_server: Any, invoke: Invoke
) -> None:
    with pytest.raises(InvalidDatasetError, match=r"line 1, column 5: unknown label 'Iris-setosa'"):
        invoke(
            "download",
            event(http_server, cases()["wine_uci"], source_url=http_server.url(), dataset={"labels": ["a", "b"]}),
        )
    assert stores_empty(aws) == NOTHING_WRITTEN


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"estimator": "xgboost"}, 'estimator must be one of svc, .*got "xgboost"'),
        ({"estimator": "svc", "hyperparameters": {"n_estimators": 10}}, "n_estimators"),
        (
            {"dataset": {"label_column": "a", "feature_columns": ["a", "b"]}},
            "label column 'a' is also in feature_columns",
        ),
        ({"dataset": {"header": "sometimes"}}, "dataset.header must be auto, true or false"),
        ({"dataset": {"delimiter": ":"}}, "dataset.delimiter must be one of"),
        ({"dataset": {"label": "x"}}, "unknown field.*in dataset: label"),
        ({"dataset": {"missing": "drop"}}, "dataset.missing must be one of"),
    ],
)
def test_bad_descriptions_and_estimators_fail_in_the_plan_naming_the_field(
    change: dict[str, Any], message: str, aws: Any, pipeline: LocalPipeline, run_input: Callable[..., dict[str, Any]]
) -> None:
    summary = pipeline.run(run_input(**change))
    assert summary["status"] == "FAILED"
    assert summary["error"]["task"] == "plan"
    assert summary["error"]["type"] in {"InvalidRequestError", "InvalidHyperparametersError"}
    assert __import__("re").search(message, summary["error"]["message"]), summary["error"]["message"]
    assert stores_empty(aws) == NOTHING_WRITTEN


def test_another_estimator_and_a_description_through_the_state_machine(
    aws: Any, pipeline: LocalPipeline, run_input: Callable[..., dict[str, Any]], http_server: Any
) -> None:
    case = cases()["breast_cancer_semicolon"]
    summary = pipeline.run(
        run_input(source_url=serve(http_server, case), estimator=case.estimator, dataset=case.description)
    )
    assert states(summary) == dict.fromkeys(TASKS, "ran"), summary
    published = summary["tasks"]["upload"]["target"].replace(f"s3://{MODELS}/", "").replace("model.pkl", "metrics.json")
    card = json.loads(aws.get_object(Bucket=MODELS, Key=published)["Body"].read())
    assert card["estimator"]["class"] == "sklearn.linear_model.LogisticRegression"
    assert card["dataset"]["resolved"]["label_column"] == "diagnosis"
    assert sorted(card["classes"]) == ["benign", "malignant"]


def test_load_model_refuses_a_model_whose_bytes_do_not_match_its_card(
    aws: Any, http_server: Any, invoke: Invoke
) -> None:
    run_tasks(invoke, event(http_server, cases()["wine_uci"]))
    aws.put_object(Bucket=MODELS, Key=f"data/{DATE}/model.pkl", Body=b"not the model")
    with pytest.raises(IntegrityError, match="sha256"):
        load_model(PUBLISHED)


def test_load_model_refuses_a_model_from_another_scikit_learn(aws: Any, http_server: Any, invoke: Invoke) -> None:
    run_tasks(invoke, event(http_server, cases()["wine_uci"]))
    key = f"data/{DATE}/metrics.json"
    card = json.loads(aws.get_object(Bucket=MODELS, Key=key)["Body"].read())
    card["versions"]["scikit_learn"] = "0.24.2"
    aws.put_object(Bucket=MODELS, Key=key, Body=json.dumps(card).encode())
    with pytest.raises(
        IncompatibleModelError, match=r"trained with scikit-learn 0\.24\.2.*install scikit-learn==0\.24\.2"
    ):
        load_model(PUBLISHED)


def test_an_unknown_field_in_a_task_event_description_is_refused(aws: Any, http_server: Any, invoke: Invoke) -> None:
    with pytest.raises(InvalidRequestError, match="unknown field"):
        invoke("train", event(http_server, cases()["wine_uci"], dataset={"sep": ";"}))
