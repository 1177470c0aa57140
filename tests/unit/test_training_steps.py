"""train_model's steps on their own: read, choose, estimate, fit (with cv_splits), measure, write the card.

Small files of three shapes, made here: numeric with string labels and a constant column;
categorical with missing values (imputed), an id column and a constant one; headerless with
integer labels. Each test runs the steps it needs and checks what they decide or compute.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from mlpipe import scaling, training
from mlpipe.description import DatasetDescription
from mlpipe.exceptions import InvalidDatasetError, InvalidHyperparametersError, TrainingError, TrainingTooLargeError
from tests.stores import target as target_for

ROWS_PER_CLASS = 20


def numeric_csv() -> bytes:
    """A header, two noisy numeric features, a constant one, three string classes of 20 rows (classes overlap)."""
    rng = np.random.default_rng(0)
    lines = ["a,b,flat,species"]
    for index, name in enumerate(["setosa", "versicolor", "virginica"]):
        for _ in range(ROWS_PER_CLASS):
            a, b = rng.normal(index, 0.8), rng.normal(-index, 0.8)
            lines.append(f"{a:.3f},{b:.3f},1.5,{name}")
    return ("\n".join(lines) + "\n").encode()


def categorical_csv() -> bytes:
    """An id, a colour with missing values, a size with missing values, a constant note, labels yes/no."""
    rng = np.random.default_rng(1)
    lines = ["id,colour,size,note,label"]
    for row in range(40):
        label = "yes" if row % 2 else "no"
        colour = ("red" if label == "yes" else "blue") if rng.random() < 0.8 else "green"
        colour = "NA" if row % 7 == 3 else colour
        size = "?" if row % 5 == 1 else f"{rng.normal(2 if label == 'yes' else 0, 1):.2f}"
        lines.append(f"r{row:03d},{colour},{size},same,{label}")
    return ("\n".join(lines) + "\n").encode()


def integer_csv() -> bytes:
    """No header: two numeric features, then integer labels 1, 2 and 3 (the last column is the label)."""
    rng = np.random.default_rng(2)
    rows = [f"{rng.normal(k, 0.5):.3f},{rng.normal(k * k, 0.5):.3f},{k}" for k in (1, 2, 3) for _ in range(15)]
    return ("\n".join(rows) + "\n").encode()


IMPUTE = {"missing": "impute", "label_column": "label"}


def read(
    tmp_path: Path, body: bytes, description: dict[str, Any] | None = None, estimator: str = "svc"
) -> training.TrainingData:
    dataset = tmp_path / "data.csv"
    dataset.write_bytes(body)
    return training.read_training_data(
        target_for(str(dataset)),
        DatasetDescription.from_value(description or {}),
        None,
        estimator,
        {},
        cv_folds=5,
        parallel=False,
        progress=training._Progress(),
    )


def choose(
    data: training.TrainingData,
    estimator: str = "svc",
    hyperparameters: dict[str, Any] | None = None,
    description: dict[str, Any] | None = None,
) -> training.ModelChoice:
    return training.choose_model(
        data, estimator, hyperparameters or {}, DatasetDescription.from_value(description or {}), "file:///data.csv"
    )


def fit(data: training.TrainingData, choice: training.ModelChoice, parallel: bool = False) -> training.Fitted:
    return training.fit_model(
        data, choice, cv_folds=5, parallel=parallel, uri="file:///data.csv", progress=training._Progress()
    )


# --- read ----------------------------------------------------------------------------------------
def test_read_gives_float_columns_and_string_labels(tmp_path: Path) -> None:
    data = read(tmp_path, numeric_csv())
    assert list(data.features.columns) == ["a", "b", "flat"]
    assert all(str(dtype) == "float64" for dtype in data.features.dtypes)
    assert data.labels.dtype == object
    assert sorted(set(data.labels.tolist())) == ["setosa", "versicolor", "virginica"]
    assert data.stats.rows == 60
    assert data.stats.label_kind == "string"


def test_read_keeps_missing_categories_as_nan_and_integer_labels_as_int(tmp_path: Path) -> None:
    categorical = read(tmp_path, categorical_csv(), IMPUTE)
    colour = categorical.features["colour"]
    assert colour.dtype == object
    assert colour.isna().sum() == categorical.stats.missing["colour"] > 0
    assert set(colour.dropna()) <= {"red", "blue", "green"}
    assert categorical.features["size"].isna().sum() == categorical.stats.missing["size"] > 0

    integer = read(tmp_path, integer_csv())
    assert integer.labels.dtype == np.int64
    assert sorted(set(integer.labels.tolist())) == [1, 2, 3]
    assert list(integer.features.columns) == ["column_0", "column_1"]


def test_read_checks_memory_before_reading_the_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")

    def never(*_: Any) -> None:
        raise AssertionError("the rows were read although the training cannot fit in memory")

    monkeypatch.setattr(training, "read_dataset", never)
    with pytest.raises(TrainingTooLargeError, match="128 MB"):
        read(tmp_path, numeric_csv())


# --- choose --------------------------------------------------------------------------------------
def test_choose_drops_a_constant_column_and_keeps_the_requested_estimator(tmp_path: Path) -> None:
    choice = choose(read(tmp_path, numeric_csv()), "logistic_regression", {"C": 0.5})
    assert (choice.numeric, choice.categorical) == ([0, 1], [])
    assert choice.dropped == [{"column": "flat", "reason": "constant: one value in every row"}]
    assert (choice.requested, choice.estimator, choice.reason) == (
        "logistic_regression",
        "logistic_regression",
        "requested",
    )
    assert choice.params["C"] == 0.5
    assert choice.params["random_state"] == 0  # the pipeline's default: the same bytes for the same data
    assert choice.shown == "LogisticRegression({'C': 0.5, 'random_state': 0})"
    assert choice.pipeline.named_steps["classifier"].get_params()["C"] == 0.5
    assert not choice.impute


def test_choose_imputes_categorical_and_numeric_and_drops_id_and_constant(tmp_path: Path) -> None:
    data = read(tmp_path, categorical_csv(), IMPUTE)
    choice = choose(data, description=IMPUTE)
    names = list(data.features.columns)
    assert [names[i] for i in choice.numeric] == ["size"]
    assert [names[i] for i in choice.categorical] == ["colour"]
    assert choice.dropped == [
        {"column": "id", "reason": "an id: every row has a different text value"},
        {"column": "note", "reason": "constant: one value in every row"},
    ]
    assert choice.impute
    transformers = {name: steps for name, steps, _ in choice.pipeline.named_steps["preprocess"].transformers}
    assert [name for name, _ in transformers["numeric"].steps] == ["impute", "scale"]
    assert [name for name, _ in transformers["categorical"].steps] == ["impute", "onehot"]
    encoded = choice.pipeline.named_steps["preprocess"].fit_transform(data.features)
    assert not np.isnan(np.asarray(encoded, dtype=float)).any()
    assert encoded.shape == (40, 1 + 3)  # size, then one column per colour


def test_choose_auto_picks_by_row_count_and_ignores_hyperparameters(tmp_path: Path) -> None:
    data = read(tmp_path, numeric_csv())
    small = choose(data, "auto", {"C": 5.0})
    assert small.estimator == "svc"
    assert small.params["C"] == 1.0
    assert small.reason.startswith("auto: 60 rows <= 30000")
    many = dataclasses.replace(data, stats=dataclasses.replace(data.stats, rows=scaling.AUTO_SVC_MAX_ROWS + 1))
    large = choose(many, "auto")
    assert (large.requested, large.estimator) == ("auto", "hist_gradient_boosting")
    assert large.numeric == [0, 1]


def test_choose_keys_class_weight_by_the_integer_labels(tmp_path: Path) -> None:
    data = read(tmp_path, integer_csv())
    choice = choose(data, "svc", {"class_weight": {"1": 2.0, "3": 0.5}})
    assert choice.params["class_weight"] == {1: 2.0, 3: 0.5}
    with pytest.raises(InvalidHyperparametersError, match="integer labels"):
        choose(data, "svc", {"class_weight": {"one": 2.0}})


def test_choose_rejects_a_file_without_a_usable_column(tmp_path: Path) -> None:
    body = b"key,flat,label\n" + b"".join(f"k{i},7,{i % 2}\n".encode() for i in range(20))
    data = read(tmp_path, body, {"label_column": "label"})
    with pytest.raises(InvalidDatasetError, match=r"no usable feature column: key is an id.*; flat is constant"):
        choose(data)


# --- estimate ------------------------------------------------------------------------------------
def test_estimate_counts_one_hot_columns_and_checks_the_time_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = read(tmp_path, categorical_csv(), IMPUTE)
    choice = choose(data, description=IMPUTE)
    with caplog.at_level(logging.INFO, logger="mlpipe.training"):
        estimate = training.estimate_fit(data, choice, 5, lambda: 900.0, training._Progress())
    assert estimate.width == 1 + 3  # size, and the three colours seen
    assert estimate.seconds == scaling.estimate_seconds("svc", 40, 4, 5)
    [record] = [r for r in caplog.records if getattr(r, "progress", {}).get("phase") == "estimating"]
    assert record.getMessage().startswith("requested: svc on 40 rows, 4 features: estimated")
    assert record.getMessage().endswith(", 900 s left")
    with pytest.raises(TrainingTooLargeError, match="svc on 40 rows and 4 features"):
        training.estimate_fit(data, choice, 5, lambda: 0.0, training._Progress())


# --- splits --------------------------------------------------------------------------------------
def test_cv_splits_are_stratified_folds_that_hold_out_each_row_once() -> None:
    codes = np.repeat(np.arange(3), ROWS_PER_CLASS)
    splits, method = training.cv_splits(codes, np.zeros((len(codes), 1)), 5)
    assert method == "stratified 5-fold, shuffled (seed 0)"
    assert len(splits) == 5
    held_out = np.concatenate([test for _, test in splits])
    assert sorted(held_out.tolist()) == list(range(len(codes)))
    for train, test in splits:
        assert np.bincount(codes[test]).tolist() == [4, 4, 4]
        assert sorted([*train.tolist(), *test.tolist()]) == list(range(len(codes)))
    unshuffled = [*range(4), *range(20, 24), *range(40, 44)]  # the first fold without shuffling
    assert sorted(splits[0][1].tolist()) != unshuffled


def test_cv_splits_hold_out_a_stratified_fifth_from_holdout_min_rows() -> None:
    codes = np.repeat([0, 1], [scaling.HOLDOUT_MIN_ROWS * 3 // 10, scaling.HOLDOUT_MIN_ROWS * 7 // 10])
    splits, method = training.cv_splits(codes, None, 5)
    assert method == "stratified 20% holdout (seed 0)"
    [(train, test)] = splits
    assert len(test) == scaling.HOLDOUT_MIN_ROWS // 5
    assert np.bincount(codes[test]).tolist() == [len(test) * 3 // 10, len(test) * 7 // 10]
    assert np.all(np.diff(test) > 0)  # sorted
    assert np.all(np.diff(train) > 0)
    assert len(np.intersect1d(train, test)) == 0
    assert len(train) + len(test) == len(codes)


# --- fit -----------------------------------------------------------------------------------------
def test_fit_scores_each_fold_on_its_own_predictions(tmp_path: Path) -> None:
    data = read(tmp_path, numeric_csv())
    fitted = fit(data, choose(data))
    assert fitted.classes == ["setosa", "versicolor", "virginica"]
    assert fitted.codes.tolist() == np.repeat([0, 1, 2], ROWS_PER_CLASS).tolist()
    assert fitted.jobs == 1
    assert (fitted.predicted >= 0).all()  # k-fold: every row is held out once
    for score, (_, test) in zip(fitted.scores, fitted.splits, strict=True):
        assert score == pytest.approx(np.mean(fitted.predicted[test] == fitted.codes[test]))
    assert 0.5 < float(np.mean(fitted.scores)) < 1.0  # the classes overlap: some rows are mispredicted
    # the final model is fitted on every row and predicts the labels themselves
    sample = fitted.sample
    assert sample.tolist() == list(range(60))
    predicted = fitted.model.predict(data.features.iloc[sample])
    assert fitted.training_accuracy == pytest.approx(np.mean(predicted == data.labels[sample]))
    assert fitted.warnings == []


def test_fit_in_parallel_gives_the_same_model_bytes_and_predictions(tmp_path: Path) -> None:
    data = read(tmp_path, categorical_csv(), IMPUTE)
    choice = choose(data, description=IMPUTE)
    one, several = fit(data, choice, parallel=False), fit(data, choice, parallel=True)
    assert several.jobs > 1 or scaling.cores() == 1
    assert one.predicted.tolist() == several.predicted.tolist()
    assert pickle.dumps(one.model, protocol=pickle.HIGHEST_PROTOCOL) == pickle.dumps(
        several.model, protocol=pickle.HIGHEST_PROTOCOL
    )


class Exploding(ClassifierMixin, BaseEstimator):
    def fit(self, features: Any, labels: Any) -> Exploding:
        raise RuntimeError("out of luck")


@pytest.mark.parametrize(
    ("estimator", "error", "message"),
    [
        (SVC(C=-1.0), InvalidHyperparametersError, r"scikit-learn rejects the hyperparameters of SVC\(shown\): "),
        (
            LogisticRegression(penalty="l1", solver="lbfgs"),
            InvalidHyperparametersError,
            r"scikit-learn cannot fit SVC\(shown\) on file:///data.csv: Solver lbfgs supports only",
        ),
        (Exploding(), TrainingError, r"fitting SVC\(shown\) on file:///data.csv failed: out of luck"),
    ],
)
def test_fit_maps_scikit_learn_failures(tmp_path: Path, estimator: Any, error: type[Exception], message: str) -> None:
    data = read(tmp_path, numeric_csv())
    choice = dataclasses.replace(choose(data), pipeline=estimator, shown="SVC(shown)")
    with pytest.raises(error, match=message):
        fit(data, choice)


# --- measure -------------------------------------------------------------------------------------
def known_predictions() -> training.Fitted:
    """Two classes of three rows and a seventh row no split holds out; the folds score 1 and 2/3."""
    codes = np.array([0, 0, 0, 1, 1, 1, 1])
    predicted = np.array([0, 0, 0, 1, 1, 0, -1])
    splits = [(np.array([2, 4, 5]), np.array([0, 1, 3])), (np.array([0, 1, 3]), np.array([2, 4, 5]))]
    return training.Fitted(
        model=None,
        classes=[10, 20],
        codes=codes,
        splits=splits,
        method="by hand",
        jobs=1,
        sample=np.arange(7),
        predicted=predicted,
        scores=[1.0, 2 / 3],
        training_accuracy=1.0,
        warnings=[],
        seconds=0.0,
    )


def test_measure_on_known_predictions() -> None:
    measures = training.measure(known_predictions())
    assert measures.cv_accuracy == {
        "mean": pytest.approx(5 / 6),
        "std": pytest.approx(1 / 6),
        "folds": 2,
        "scores": [1.0, pytest.approx(2 / 3)],
        "method": "by hand",
        "rows_evaluated": 6,
    }
    metrics = measures.cv_metrics
    assert metrics["confusion_matrix"] == {
        "labels": [10, 20],
        "matrix": [[3, 0], [1, 2]],
        "rows": "true label",
        "columns": "predicted label",
    }
    assert metrics["per_class"] == {
        "10": {"precision": 0.75, "recall": 1.0, "f1": pytest.approx(6 / 7), "support": 3},
        "20": {"precision": 1.0, "recall": pytest.approx(2 / 3), "f1": pytest.approx(4 / 5), "support": 3},
    }
    assert metrics["balanced_accuracy"] == pytest.approx(5 / 6)
    assert metrics["macro_f1"] == pytest.approx((6 / 7 + 4 / 5) / 2)


def test_measure_agrees_with_a_real_fit(tmp_path: Path) -> None:
    data = read(tmp_path, integer_csv())
    fitted = fit(data, choose(data))
    metrics = training.measure(fitted).cv_metrics
    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    assert metrics["confusion_matrix"]["labels"] == [1, 2, 3]
    assert matrix.sum() == len(fitted.codes) == 45
    assert matrix.sum(axis=1).tolist() == [15, 15, 15] == [metrics["per_class"][k]["support"] for k in "123"]
    correct = np.mean(fitted.predicted == fitted.codes)
    assert np.trace(matrix) / matrix.sum() == pytest.approx(correct)
    recalls = [matrix[i, i] / matrix[i].sum() for i in range(3)]
    assert metrics["balanced_accuracy"] == pytest.approx(np.mean(recalls))


# --- write the card ------------------------------------------------------------------------------
CARD_KEYS = [
    "card_version",
    "task",
    "task_decision",
    "score",
    "rows",
    "classes",
    "class_counts",
    "dataset",
    "input",
    "estimator",
    "preprocessing",
    "hyperparameters",
    "training_accuracy",
    "training_accuracy_rows",
    "cv_accuracy",
    "cv_metrics",
    "warnings",
    "fit_seconds",
    "fit_estimate",
    "scikit_learn_version",
    "versions",
    "dataset_sha256",
    "model_bytes",
    "model_sha256",
    "lineage",
]


def test_write_card_writes_the_model_it_describes_as_train_model_does(tmp_path: Path) -> None:
    description, hyperparameters = DatasetDescription(), {"class_weight": {"1": 2.0}}
    data = read(tmp_path, integer_csv())
    choice = choose(data, "svc", hyperparameters)
    estimate = training.estimate_fit(data, choice, 5, None, training._Progress())
    fitted = fit(data, choice)
    measures = training.measure(fitted)
    model = tmp_path / "steps" / "model.pkl"
    dataset_uri = target_for(str(tmp_path / "data.csv")).uri
    result = training.write_card(
        target_for(str(model)),
        dataset_uri,
        data,
        choice,
        estimate,
        fitted,
        measures,
        description=description,
        hyperparameters=hyperparameters,
        lineage={"run": "r1", "versions": {"mlpipe": "x"}},
    )
    card = json.loads((model.parent / "metrics.json").read_text())
    assert result.wrote
    assert list(result.metrics) == CARD_KEYS
    assert card == json.loads(json.dumps(result.metrics))
    assert card["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert card["model_bytes"] == model.stat().st_size
    assert card["classes"] == [1, 2, 3]
    assert card["estimator"]["hyperparameters"]["class_weight"] == {"1": 2.0}
    assert card["cv_accuracy"] == measures.cv_accuracy
    assert card["fit_estimate"]["features"] == estimate.width == 2
    assert card["lineage"]["input_targets"] == [{"uri": dataset_uri, "sha256": data.stats.sha256}]
    assert card["lineage"]["versions"]["mlpipe"] == "x"
    assert card["lineage"]["versions"]["scikit_learn"] == card["versions"]["scikit_learn"]
    assert pickle.loads(model.read_bytes()).predict(data.features.iloc[:3]).dtype == np.int64

    whole = training.train_model(
        target_for(str(tmp_path / "data.csv")),
        target_for(str(tmp_path / "whole" / "model.pkl")),
        estimator="svc",
        hyperparameters=hyperparameters,
        cv_folds=5,
        description=description,
        parallel=False,
    )
    assert whole.metrics["model_sha256"] == card["model_sha256"]
    assert {k: v for k, v in whole.metrics.items() if k != "fit_seconds"} == {
        k: v for k, v in result.metrics.items() if k not in ("fit_seconds", "lineage")
    }
