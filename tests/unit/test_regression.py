"""Regression (docs/regression.md): the task rule on real labels, the regression target's named errors, regressors
fitted on real data of several shapes whose held-out predictions beat the mean predictor, the card's score for
both tasks, the gate's baseline rule, and predictions of a regressor read back with their metrics."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets

from mlpipe import training
from mlpipe.config import Settings, resolve_run
from mlpipe.dataset import validate_dataset
from mlpipe.description import DatasetDescription
from mlpipe.estimators import check_estimator, effective_hyperparameters, validate_hyperparameters
from mlpipe.exceptions import InvalidDatasetError, InvalidHyperparametersError, InvalidRequestError
from mlpipe.gate import evaluate
from mlpipe.predicting import NO_PROBABILITIES, predict_file
from mlpipe.problem import CLASSIFICATION, REGRESSION, LabelStats, decide_task
from mlpipe.storage import Store
from tests.conftest import SAMPLE
from tests.regression_datasets import FIXTURES, RegressionCase, held_out_r2, regression_cases
from tests.stores import target as target_for

URI = "memory://data.csv"
IRIS = SAMPLE.read_bytes()


def csv_bytes(frame: pd.DataFrame, header: bool = True) -> bytes:
    out = io.StringIO()
    frame.to_csv(out, index=False, header=header, lineterminator="\n")
    return out.getvalue().encode()


def diabetes() -> pd.DataFrame:
    return datasets.load_diabetes(as_frame=True, scaled=False).frame


# --- the task rule --------------------------------------------------------------------------------
def test_auto_decides_regression_for_a_disease_progression_score_and_classes_for_iris_and_digit_codes() -> None:
    # Prices, scores, durations: numbers with many distinct values are a target
    assert validate_dataset([csv_bytes(diabetes())], URI).task == REGRESSION
    # Iris names and integers 0-9 (the digits data's label, last) are classes
    assert validate_dataset([IRIS], URI).task == CLASSIFICATION
    digits = datasets.load_digits(as_frame=True).frame.iloc[:400]
    stats = validate_dataset([csv_bytes(digits)], URI)
    assert stats.task == CLASSIFICATION
    assert stats.label is not None
    assert (stats.label.numeric, stats.label.distinct) == (True, 10)


@pytest.mark.parametrize(
    ("distinct", "fractional", "expected"),
    [
        (21, False, REGRESSION),  # more than 20 distinct integers: a count or a price in whole units
        (20, False, CLASSIFICATION),  # 20 integer codes: classes
        (11, True, REGRESSION),  # 11 values, some not integers: a rounded measurement
        (10, True, CLASSIFICATION),  # at most 10 values: classes even with decimals (grades 1.5, 2.0, ...)
    ],
)
def test_the_rule_on_borderline_numeric_labels(distinct: int, fractional: bool, expected: str) -> None:
    values = [i + (0.5 if fractional else 0) for i in range(distinct)]
    body = "x,label\n" + "".join(f"{i % 7},{v}\n" for i in range(6) for v in values)
    stats = validate_dataset([body.encode()], URI, min_class_rows=2)
    assert stats.task == expected
    assert decide_task("auto", stats.label).inputs == {"numeric": True, "distinct": distinct, "non_integer": fractional}


def test_auto_reads_a_label_written_as_decimals_as_a_target_longleys_employment() -> None:
    # 16 rows, 16 whole numbers written as floats (60323.0): the example, a target, not 16 classes
    stats = validate_dataset([(FIXTURES / "longley.csv").read_bytes()], URI, min_class_rows=5)
    assert stats.task == REGRESSION
    assert stats.label is not None
    assert (stats.label.distinct, stats.label.non_integer) == (16, True)
    # the same values written as integers are 16 class codes (and too few rows of each for the folds)
    integers = b"TOTEMP,YEAR\n" + b"".join(f"{60000 + i},{1947 + i}\n".encode() for i in range(16))
    with pytest.raises(InvalidDatasetError, match="--task regression"):
        validate_dataset([integers], URI, min_class_rows=5)


def test_an_explicit_task_overrides_the_rule_and_the_decision_says_so() -> None:
    label = LabelStats(numeric=True, distinct=3)
    assert decide_task("regression", label).task == REGRESSION
    assert decide_task("regression", label).reason == "task regression was requested"
    stats = validate_dataset([csv_bytes(diabetes())], URI, task="classification")
    assert stats.task == CLASSIFICATION
    assert len(stats.class_counts) == 214


def test_auto_choosing_classes_for_a_numeric_label_with_rare_classes_suggests_task_regression() -> None:
    # linnerud's weights: 20 rows, integers, fewer than 21 distinct -> classes, each too small for the folds
    frame = datasets.load_linnerud(as_frame=True)
    table = pd.concat([frame.data, frame.target[["Weight"]]], axis=1).astype(int)  # pounds, written as integers
    with pytest.raises(InvalidDatasetError, match=r"fewer than the 5 folds.*--task regression"):
        validate_dataset([csv_bytes(table)], URI, min_class_rows=5)
    assert validate_dataset([csv_bytes(table)], URI, min_class_rows=5, task="regression").task == REGRESSION


# --- bad input: named errors before anything is written -------------------------------------------
@pytest.mark.parametrize(
    ("body", "options", "message"),
    [
        (b"x,y\n1,2.5\n2,3.5\n3,abc\n4,1\n", {}, r"line 4: the label 'abc' is not a number; task regression"),
        (b"x,y\n1,2.5\n2,inf\n3,3\n4,1\n", {}, r"line 3: the label 'inf' is not a finite number"),
        (b"x,y\n1,7\n2,7\n3,7\n4,7\n", {}, r"the label is constant \(7.0 in all 4 rows\)"),
        (b"x,y\n1,2.5\n2,3.5\n3,1.5\n", {}, r"3 rows, fewer than two for each of the 2 folds"),
        (b"x,y\n1,2.5\n2,0\n3,1.5\n4,1\n", {"target_transform": "log"}, r"line 3: the label '0' is not positive"),
    ],
)
def test_a_bad_regression_target_is_a_named_error_naming_the_line(
    body: bytes, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidDatasetError, match=message):
        validate_dataset([body], URI, min_class_rows=2, task="regression", **options)


def test_a_missing_regression_label_is_named_with_its_line() -> None:
    with pytest.raises(InvalidDatasetError, match=r"line 3, column 2: missing label"):
        validate_dataset([b"x,y\n1,2.5\n2,\n3,1.5\n4,1\n"], URI, task="regression")


def plan(**execution_input: Any) -> Any:
    settings = Settings(artifact_root="/tmp/a", publish_uri="/tmp/p", allow_local_storage=True)
    return resolve_run({"run_date": "2026-11-25"} | execution_input, settings, store=Store.from_settings(settings))


@pytest.mark.parametrize(
    ("execution_input", "error", "message"),
    [
        ({"task": "regresion"}, InvalidRequestError, "task must be one of auto, classification, regression"),
        ({"task": "classification", "target_transform": "log"}, InvalidRequestError, "transforms a regression"),
        ({"target_transform": "sqrt"}, InvalidRequestError, "target_transform must be one of none, log"),
        ({"task": "classification", "estimator": "svr"}, InvalidRequestError, "regressors .task regression.: svr"),
        ({"task": "regression", "dataset": {"labels": ["a", "b"]}}, InvalidRequestError, "'a', not a number"),
        (
            {"task": "regression", "estimator": "ridge", "hyperparameters": {"alpha": -1}},
            InvalidHyperparametersError,
            r"alpha must be",
        ),
        (
            {"task": "regression", "hyperparameters": {"probability": True}},
            InvalidHyperparametersError,
            "'probability' is not a parameter of svr",
        ),
    ],
)
def test_the_plan_refuses_what_the_request_alone_shows(
    execution_input: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        plan(**execution_input)


def test_hyperparameters_are_checked_from_scikit_learns_constraints_of_the_regressor() -> None:
    assert validate_hyperparameters("svc", {"epsilon": 0.2}, task="regression") == {"epsilon": 0.2}
    assert validate_hyperparameters("svc", {"epsilon": 0.2}, task="auto") == {"epsilon": 0.2}  # valid for SVR
    with pytest.raises(InvalidHyperparametersError, match="not a parameter of svc"):
        validate_hyperparameters("svc", {"epsilon": 0.2}, task="classification")
    assert effective_hyperparameters("random_forest", {}, "regression")["criterion"] == "squared_error"
    assert check_estimator("linear_svr", "auto") == "linear_svr"


def test_the_default_runs_identity_is_unchanged_and_a_regression_runs_differs() -> None:
    default, regression = plan(), plan(task="regression")
    assert "task" not in default.identities["train"]["inputs"]
    assert default.identities["download"] == regression.identities["download"]  # the same data
    assert default.identities["train"]["identity"] != regression.identities["train"]["identity"]
    assert regression.identities["train"]["inputs"]["hyperparameters"]["epsilon"] == 0.1  # SVR's


# --- training on real data of several shapes ------------------------------------------------------
def train(tmp_path: Path, case: RegressionCase) -> tuple[Any, dict[str, Any]]:
    dataset = tmp_path / f"{case.name}.csv"
    dataset.write_bytes(case.body)
    run = case.run
    result = training.train_model(
        target_for(str(dataset)),
        target_for(str(tmp_path / case.name / "model.pkl")),
        estimator=run.get("estimator", "svc"),
        hyperparameters=run.get("hyperparameters", {}),
        cv_folds=run.get("cv_folds", 5),
        description=DatasetDescription.from_value(run.get("dataset")),
        task=run.get("task", "auto"),
        target_transform=run.get("target_transform", "none"),
        parallel=False,
    )
    model = pickle.loads((tmp_path / case.name / "model.pkl").read_bytes())
    return model, result.metrics


@pytest.mark.parametrize("name", list(regression_cases()))
def test_each_regression_shape_predicts_held_out_rows_better_than_the_mean(tmp_path: Path, name: str) -> None:
    case = regression_cases()[name]
    model, card = train(tmp_path, case)
    predicted = model.predict(case.holdout)
    mean = card["target"]["mean"]  # the mean predictor: the training rows' mean
    baseline = held_out_r2([mean] * len(case.holdout_targets), case.holdout_targets)
    r2 = held_out_r2(predicted, case.holdout_targets)
    assert r2 - baseline >= case.min_holdout_r2, (name, r2, baseline)
    assert card["task"] == "regression"
    assert card["rows"] == case.rows
    assert card["score"]["name"] == "cv_r2"
    assert card["score"]["value"] == card["cv_r2"]["mean"] > card["score"]["baseline"]
    assert card["cv_r2"]["method"].startswith(f"{card['cv_r2']['folds']}-fold, shuffled")  # KFold, no strata
    assert card["cv_metrics"]["rmse"] < card["cv_metrics"]["baseline_rmse"]
    assert card["input"]["predict_proba"] is False
    assert not hasattr(model, "predict_proba")
    assert card["input"]["columns"] == list(case.holdout.columns)
    shown = min(case.rows, training.CV_PREDICTIONS_SHOWN)  # a seeded sample of the held-out rows, for the report
    assert len(card["cv_predictions"]["actual"]) == len(card["cv_predictions"]["predicted"]) == shown
    assert card["cv_predictions"]["of"] == case.rows
    assert "cv_accuracy" not in card
    json.dumps(card, allow_nan=False)


def test_the_log_transform_predicts_in_the_targets_units(tmp_path: Path) -> None:
    case = regression_cases()["grunfeld_log"]
    model, card = train(tmp_path, case)
    regressor = model.named_steps["regressor"]
    assert type(regressor).__name__ == "TransformedTargetRegressor"
    assert card["preprocessing"]["target"]["steps"] == ["log1p"]
    assert card["dataset"]["resolved"]["categorical_columns"]["firm"]["count"] == 11
    predicted = model.predict(case.holdout)
    assert predicted.min() > 0
    assert np.median(predicted) > 10


def test_a_classifiers_card_has_the_score_with_the_majority_class_baseline(tmp_path: Path) -> None:
    (tmp_path / "iris.csv").write_bytes(IRIS)
    result = training.train_model(
        target_for(str(tmp_path / "iris.csv")),
        target_for(str(tmp_path / "m" / "model.pkl")),
        estimator="svc",
        hyperparameters={},
        cv_folds=5,
        parallel=False,
    )
    card = result.metrics
    assert card["task"] == "classification"
    assert card["task_decision"]["task"] == "classification"
    assert card["score"]["name"] == "cv_accuracy"
    assert card["score"]["value"] == card["cv_accuracy"]["mean"]
    assert card["score"]["baseline"] == pytest.approx(1 / 3, abs=0.02)  # 50 rows of each class, stratified folds
    assert card["cv_accuracy"]["method"].startswith("stratified 5-fold")


# --- the gate --------------------------------------------------------------------------------------
def card_with(value: float, baseline: float, name: str = "cv_r2") -> dict[str, Any]:
    return {
        "task": "regression",
        "classes": [],
        "score": {"name": name, "value": value, "std": 0.0, "baseline": baseline},
    }


def test_the_gate_reads_r2_and_the_baseline_must_be_beaten() -> None:
    passed = evaluate(
        card_with(0.4, -0.01),
        None,
        model_uri="m",
        min_cv_accuracy=None,
        max_regression=None,
        min_lift_over_baseline=0.0,
    )
    assert (passed["score"], passed["score_name"], passed["cv_accuracy"], passed["passed"]) == (
        0.4,
        "cv_r2",
        None,
        True,
    )
    at_baseline = evaluate(
        card_with(0.0, 0.0), None, model_uri="m", min_cv_accuracy=None, max_regression=None, min_lift_over_baseline=0.0
    )
    assert at_baseline["passed"] is False
    assert "is not above the threshold 0.0000" in at_baseline["reason"]
    lifted = evaluate(
        card_with(0.4, 0.0), None, model_uri="m", min_cv_accuracy=None, max_regression=None, min_lift_over_baseline=0.5
    )
    assert (lifted["passed"], lifted["threshold"]) == (False, 0.5)
    off = evaluate(
        card_with(-0.2, 0.0),
        None,
        model_uri="m",
        min_cv_accuracy=None,
        max_regression=None,
        min_lift_over_baseline=None,
    )
    assert off["passed"] is True


def test_max_regression_compares_r2_with_a_regression_champion_only() -> None:
    champion = {"identity": "published-x", "classes": [], "metrics": {"score": 0.8, "score_name": "cv_r2"}}
    worse = evaluate(card_with(0.6, 0.0), champion, model_uri="m", min_cv_accuracy=None, max_regression=0.1)
    assert worse["passed"] is False
    assert worse["threshold"] == pytest.approx(0.7)
    classifier = {"identity": "published-y", "classes": ["a"], "metrics": {"cv_accuracy": 0.99}}
    # A regressor after a classifier changes what consumers get: a schema change, whatever its score.
    other = evaluate(card_with(0.6, 0.0), classifier, model_uri="m", min_cv_accuracy=None, max_regression=0.1)
    assert (other["passed"], other["error"]) == (False, "SchemaChangedError")
    assert "the task changes: classification -> regression" in other["reason"]
    # Accepted, the scores are not compared across tasks.
    accepted = evaluate(
        card_with(0.6, 0.0),
        classifier,
        model_uri="m",
        min_cv_accuracy=None,
        max_regression=0.1,
        accept_schema_change=True,
    )
    assert accepted["passed"] is True
    assert "another task" in accepted["reason"]


# --- predicting --------------------------------------------------------------------------------------
def test_predict_returns_numbers_and_the_metrics_on_the_label_column(tmp_path: Path) -> None:
    case = regression_cases()["longley_label_first"]
    train(tmp_path, case)
    rows = case.holdout.assign(TOTEMP=case.holdout_targets)
    (tmp_path / "new.csv").write_bytes(csv_bytes(rows))
    store = Store.on_this_machine()
    result = predict_file(tmp_path / "new.csv", model_uri=str(tmp_path / case.name / "model.pkl"), store=store)
    assert all(isinstance(p, float) for p in result.predictions)
    assert result.probabilities is None
    metrics = result.metrics
    assert metrics is not None
    assert metrics["rows"] == len(case.holdout_targets)
    assert metrics["r2"] == pytest.approx(held_out_r2(result.predictions, case.holdout_targets))
    assert metrics["rmse"] == pytest.approx(
        float(np.sqrt(np.mean((np.array(result.predictions) - case.holdout_targets) ** 2)))
    )
    shown = result.as_dict()
    assert shown["note"] == NO_PROBABILITIES
    assert "accuracy" not in shown


def test_regression_splits_are_shuffled_kfold_and_a_plain_holdout_from_50000_rows() -> None:
    target = np.linspace(0.0, 1.0, 100)  # sorted: unshuffled folds would each hold one range of the target
    splits, method = training.cv_splits(target, target.reshape(-1, 1), 5, REGRESSION)
    assert method == "5-fold, shuffled (seed 0)"
    assert [len(test) for _, test in splits] == [20] * 5
    assert all(np.ptp(target[test]) > 0.5 for _, test in splits)
    big = np.arange(60_000, dtype=float)
    ((train_rows, test_rows),) = training.cv_splits(big, None, 5, REGRESSION)[0]
    assert (len(train_rows), len(test_rows)) == (48_000, 12_000)
    assert training.cv_splits(big, None, 5, REGRESSION)[1] == "20% holdout (seed 0)"


def test_a_log_transform_of_a_label_taken_as_classes_is_refused_not_dropped() -> None:
    # Given: integer codes 0..9, which auto reads as classes, and a request to model log1p of the label
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=list("abc")).assign(y=rng.integers(0, 10, 200))
    # Then: the download refuses it, naming the decision and the way out, instead of training classes silently
    with pytest.raises(InvalidDatasetError, match="target_transform log applies to a regression target") as refused:
        validate_dataset([csv_bytes(frame)], "file:///codes.csv", target_transform="log")
    assert "--task regression" in str(refused.value)
    # and with task regression the same label is a target (0 is not positive: the log's own error)
    with pytest.raises(InvalidDatasetError, match="is not positive; target_transform log"):
        validate_dataset([csv_bytes(frame)], "file:///codes.csv", task="regression", target_transform="log")


@pytest.mark.parametrize("scale", [1e200, -1e200, 1e39])
def test_a_regression_label_beyond_the_largest_magnitude_is_refused_in_the_download(scale: float) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(100, 3))
    frame = pd.DataFrame(features, columns=list("abc")).assign(y=features @ [1.0, 2.0, 3.0] * scale)
    with pytest.raises(InvalidDatasetError, match=r"beyond ±1e\+38, the largest magnitude a regression target"):
        validate_dataset([csv_bytes(frame)], "file:///huge.csv", task="regression")
    # the same label at 1e30 is a target like any other
    fine = frame.assign(y=features @ [1.0, 2.0, 3.0] * 1e30)
    assert validate_dataset([csv_bytes(fine)], "file:///fine.csv", task="regression").task == REGRESSION
