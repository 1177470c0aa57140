"""Real datasets of different shapes, written to CSV from the copies that ship with scikit-learn (no network).

Each ``Case`` is a training file (the bytes a source would serve), the execution input's
``dataset`` description that reads it, and held-out rows (never in the training file) with their
labels, to check the published model's predictions.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class Case:
    """A training CSV, how to read it, and rows held out from it to predict."""

    name: str
    body: bytes
    description: dict[str, Any]
    holdout: pd.DataFrame  # feature columns, named as the trained model names them
    holdout_labels: list[Any]
    min_accuracy: float
    estimator: str = "svc"
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    label_name: str = ""
    rows: int = 0  # data rows in the training file


def _split(frame: pd.DataFrame, label: str, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = train_test_split(frame, test_size=0.2, random_state=seed, stratify=frame[label])
    return train, test


def _csv(frame: pd.DataFrame, *, header: bool, delimiter: str = ",") -> bytes:
    out = io.StringIO()
    frame.to_csv(out, index=False, header=header, sep=delimiter, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return out.getvalue().encode()


def _holdout(test: pd.DataFrame, label: str, names: list[str] | None = None) -> tuple[pd.DataFrame, list[Any]]:
    features = test.drop(columns=[label])
    if names is not None:
        features.columns = names
    labels = [value.item() if isinstance(value, np.generic) else value for value in test[label].tolist()]
    return features.reset_index(drop=True), labels


def wine_uci() -> Case:
    """UCI's wine.data shape: no header, the label (1, 2, 3) in the first column, 13 numeric features."""
    data = datasets.load_wine(as_frame=True).frame
    data = data[["target", *[c for c in data.columns if c != "target"]]]
    data["target"] = data["target"] + 1
    train, test = _split(data, "target")
    holdout, labels = _holdout(test, "target", [f"column_{i}" for i in range(1, 14)])
    return Case("wine_uci", _csv(train, header=False), {"label_column": 0}, holdout, labels, 0.9, rows=len(train))


def breast_cancer_semicolon() -> Case:
    """A header with spaces in the names, ';' as the delimiter, string labels in a named column."""
    raw = datasets.load_breast_cancer(as_frame=True)
    data = raw.frame.rename(columns={"target": "diagnosis"})
    data["diagnosis"] = data["diagnosis"].map(dict(enumerate(raw.target_names)))
    train, test = _split(data, "diagnosis")
    holdout, labels = _holdout(test, "diagnosis")
    return Case(
        "breast_cancer_semicolon",
        _csv(train, header=True, delimiter=";"),
        {"delimiter": ";", "label_column": "diagnosis"},
        holdout,
        labels,
        0.93,
        estimator="logistic_regression",
        label_name="diagnosis",
        rows=len(train),
    )


def iris_tab_label_inside() -> Case:
    """Tab-separated with a header, the label column between the features."""
    raw = datasets.load_iris(as_frame=True)
    data = raw.frame.rename(columns={"target": "species"})
    data["species"] = data["species"].map(dict(enumerate(raw.target_names)))
    data = data[["sepal length (cm)", "sepal width (cm)", "species", "petal length (cm)", "petal width (cm)"]]
    train, test = _split(data, "species")
    holdout, labels = _holdout(test, "species")
    return Case(
        "iris_tab_label_inside",
        _csv(train, header=True, delimiter="\t"),
        {"delimiter": "\t", "label_column": "species"},
        holdout,
        labels,
        0.85,
        estimator="random_forest",
        hyperparameters={"n_estimators": 30},
        label_name="species",
        rows=len(train),
    )


def digits_wide() -> Case:
    """64 features, no header, ten integer classes; several pixels are constant (dropped, with a note)."""
    data = datasets.load_digits(as_frame=True).frame
    train, test = _split(data, "target")
    holdout, labels = _holdout(test, "target", [f"column_{i}" for i in range(64)])
    return Case(
        "digits_wide", _csv(train, header=False), {}, holdout, labels, 0.9, estimator="linear_svc", rows=len(train)
    )


def wine_categorical_quoted() -> Case:
    """Text columns: a categorical one whose values hold the delimiter, quotes and a newline (RFC 4180
    quoting), an id column and a constant one (both dropped), string labels."""
    data = datasets.load_wine(as_frame=True).frame
    rng = np.random.default_rng(0)
    regions = np.array(["North, upper", 'South "deep"', "East\nside", "West"])
    # The region carries signal: it follows the class most of the time.
    region = np.where(
        rng.random(len(data)) < 0.8, regions[data["target"].to_numpy()], regions[rng.integers(0, 4, len(data))]
    )
    frame = pd.DataFrame(
        {
            "batch": [f"B-{i:05d}" for i in range(len(data))],
            "alcohol": data["alcohol"],
            "region": region,
            "malic_acid": data["malic_acid"],
            "color_intensity": data["color_intensity"],
            "country": "Italy",
            "proline": data["proline"],
            "cultivar": data["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"}),
        }
    )
    train, test = _split(frame, "cultivar")
    test = test.copy()
    test.iloc[0, test.columns.get_loc("region")] = "Atlantis"  # a category never seen in training: ignored
    holdout, labels = _holdout(test, "cultivar")
    return Case(
        "wine_categorical_quoted",
        _csv(train, header=True),
        {"label_column": "cultivar"},
        holdout,
        labels,
        0.85,
        estimator="hist_gradient_boosting",
        hyperparameters={"max_iter": 50},
        label_name="cultivar",
        rows=len(train),
    )


def breast_cancer_missing() -> Case:
    """About 3% of the feature cells empty, "NA" or "?": a header, labels 0/1 in the last column."""
    data = datasets.load_breast_cancer(as_frame=True).frame
    train, test = _split(data, "target")
    train = train.astype(object)
    rng = np.random.default_rng(1)
    tokens = ["", "NA", "?"]
    features = [c for c in train.columns if c != "target"]
    for row in range(len(train)):
        for column in rng.choice(len(features), size=1, replace=False):
            if rng.random() < 0.9:
                train.iloc[row, column] = tokens[rng.integers(0, 3)]
    holdout, labels = _holdout(test, "target")
    return Case(
        "breast_cancer_missing", _csv(train, header=True), {"missing": "impute"}, holdout, labels, 0.9, rows=len(train)
    )


@cache
def cases() -> dict[str, Case]:
    """Every case, built once per test session."""
    built = [
        wine_uci(),
        breast_cancer_semicolon(),
        iris_tab_label_inside(),
        digits_wide(),
        wine_categorical_quoted(),
        breast_cancer_missing(),
    ]
    return {case.name: case for case in built}
