"""Whatever the download accepts trains, and a failed fit is named by whose fault it is (issue "Trust").

InvalidHyperparametersError only for scikit-learn's parameter validation (and a parameter check it
makes while fitting, which the same hyperparameters fail on any data); InvalidDatasetError for data
that scikit-learn's input checks refuse; TrainingError for anything else.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.svm import SVC

from mlpipe import training
from mlpipe.dataset import DatasetStats, validate_dataset
from mlpipe.description import DatasetDescription
from mlpipe.estimators import ESTIMATORS
from mlpipe.exceptions import InvalidDatasetError, InvalidHyperparametersError, TrainingError
from tests.conftest import SAMPLE
from tests.stores import target as target_for

URI = "file:///data.csv"


def extreme_csv(big_label: bool = False) -> bytes:
    """Numbers at the edges of what the download accepts: ±1e38, 20 digits, underflow to 0; labels beyond int64."""
    rng = np.random.default_rng(0)
    edges = ["1e38", "-1e38", "99999999999999999999", "1e-400", "-0.0", "3.4e37"]
    labels = ["1", "2", "99999999999999999999999"] if big_label else ["1", "2", "3"]
    lines = ["edge,noise,label"]
    for i in range(36):
        label = labels[i % 3]
        lines.append(f"{edges[i % len(edges)]},{rng.normal(i % 3, 0.3):.4f},{label}")
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
@pytest.mark.parametrize("big_label", [False, True])
def test_what_the_download_accepts_trains_with_every_estimator(tmp_path: Path, estimator: str, big_label: bool) -> None:
    body = extreme_csv(big_label)
    stats = validate_dataset([body], URI, min_class_rows=3)  # the download's check
    assert stats.kinds == {"edge": "numeric", "noise": "numeric"}
    dataset = tmp_path / "data.csv"
    dataset.write_bytes(body)
    model = tmp_path / "model" / "model.pkl"
    result = training.train_model(
        target_for(str(dataset)), target_for(str(model)), estimator=estimator, hyperparameters={}, cv_folds=3
    )
    assert result.wrote
    card = json.loads((model.parent / "metrics.json").read_text())
    assert card["dataset"]["resolved"]["label_kind"] == ("string" if big_label else "integer")
    assert len(card["classes"]) == 3


def numeric_data(rows: int = 60) -> training.TrainingData:
    """Two numeric features and three string classes, read as training reads them."""
    rng = np.random.default_rng(0)
    lines = ["x,y,label"] + [f"{rng.normal():.4f},{rng.normal():.4f},{'abc'[i % 3]}" for i in range(rows)]
    body = ("\n".join(lines) + "\n").encode()
    stats = validate_dataset([body], URI)
    features, labels = training.read_dataset(io.BytesIO(body), URI, stats, DatasetDescription())
    return training.TrainingData(stats, features, labels)


def fit_with(data: training.TrainingData, estimator: Any) -> training.Fitted:
    description = DatasetDescription()
    choice = training.choose_model(data, "svc", {}, description, URI)
    choice = dataclasses.replace(choice, pipeline=estimator, shown="Shown()")
    return training.fit_model(data, choice, cv_folds=3, parallel=True, uri=URI, progress=training._Progress())


def test_data_that_scikit_learns_input_checks_refuse_is_an_invalid_dataset() -> None:
    data = numeric_data()
    features = data.features.copy()
    features.loc[5, "x"] = np.inf
    with pytest.raises(InvalidDatasetError, match=r"invalid dataset at file:///data.csv: .*Input X contains infinity"):
        fit_with(dataclasses.replace(data, features=features), SVC())


class OddOnLargeData(ClassifierMixin, BaseEstimator):
    """Fits on small data, raises ValueError on more rows than the hyperparameter probe uses."""

    def fit(self, features: Any, labels: Any) -> OddOnLargeData:
        if len(features) > training.PROBE_ROWS_PER_CLASS * len(set(labels)):
            raise ValueError("something about this data")
        self.classes_ = np.unique(labels)
        return self

    def predict(self, features: Any) -> Any:
        return np.full(len(features), self.classes_[0])


def test_a_value_error_the_hyperparameters_do_not_cause_is_a_training_error() -> None:
    with pytest.raises(TrainingError, match=r"fitting Shown\(\) on file:///data.csv failed: something about this data"):
        fit_with(numeric_data(), OddOnLargeData())


def test_a_parameter_check_made_while_fitting_is_a_hyperparameter_error() -> None:
    with pytest.raises(InvalidHyperparametersError, match=r"break_ties must be False") as caught:
        fit_with(numeric_data(), SVC(break_ties=True, decision_function_shape="ovo"))
    assert "on any data" in str(caught.value)


def test_a_check_made_before_the_rules_changed_is_not_reused(tmp_path: Path) -> None:
    # A lineage record from before the typo rule: its stats say the column is categorical.
    lines = SAMPLE.read_text().splitlines()
    lines[9] = "abc" + lines[9][3:]
    body = ("\n".join(lines) + "\n").encode()
    dataset = tmp_path / "data.csv"
    dataset.write_bytes(body)
    stats = validate_dataset([body], URI, DatasetDescription.from_value({"categorical_columns": [0]}))
    record = stats.to_dict()
    del record["rules"]
    old = DatasetStats.from_dict(record)
    with pytest.raises(InvalidDatasetError, match=r"line 10, column 1: 'abc'"):
        training.train_model(
            target_for(str(dataset)),
            target_for(str(tmp_path / "model" / "model.pkl")),
            estimator="svc",
            hyperparameters={},
            cv_folds=5,
            known=old,
        )
