"""Real regression datasets of different shapes, as CSV: scikit-learn's shipped copies (no network) and small
fixtures written from statsmodels' datasets (tests/fixtures/regression/, see its README).

Each ``RegressionCase`` is a training file, the execution input's fields that read and train it, and held-out
rows (never in the training file) with their targets, to check the model's predictions against the mean predictor.
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

from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "regression"
# Held-out R² must beat the mean predictor's (R² about 0 on held-out rows) by at least this (a case may ask more).
# The diabetes data is noisy: the best published models reach R² 0.5, and its 20 % split here (seed 0) gives 0.21.
R2_MARGIN = 0.15


@dataclass(frozen=True)
class RegressionCase:
    """A training CSV, how to read and train it, and held-out rows with their targets."""

    name: str
    body: bytes
    run: dict[str, Any]  # execution input fields: dataset, estimator, task, target_transform, cv_folds
    holdout: pd.DataFrame
    holdout_targets: list[float]
    rows: int
    min_holdout_r2: float = R2_MARGIN
    label_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _csv(frame: pd.DataFrame, *, header: bool) -> bytes:
    out = io.StringIO()
    frame.to_csv(out, index=False, header=header, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return out.getvalue().encode()


def _case(
    name: str,
    frame: pd.DataFrame,
    label: str,
    run: dict[str, Any],
    *,
    header: bool = True,
    names: list[str] | None = None,
    min_r2: float = R2_MARGIN,
) -> RegressionCase:
    train, test = train_test_split(frame, test_size=0.2, random_state=0)
    features = test.drop(columns=[label]).reset_index(drop=True)
    if names is not None:
        features.columns = names
    return RegressionCase(
        name=name,
        body=_csv(train, header=header),
        run=run,
        holdout=features,
        holdout_targets=[float(v) for v in test[label]],
        rows=len(train),
        min_holdout_r2=min_r2,
        label_name=label,
    )


def diabetes_no_header() -> RegressionCase:
    """scikit-learn's diabetes data (raw units), no header, the disease progression last; the default estimator."""
    frame = datasets.load_diabetes(as_frame=True, scaled=False).frame
    names = [f"column_{i}" for i in range(frame.shape[1] - 1)]
    return _case("diabetes_no_header", frame, "target", {}, header=False, names=names)


def diabetes_missing_imputed() -> RegressionCase:
    """The diabetes data with a header and 5 % of its feature cells empty, imputed; logistic_regression's regressor."""
    frame = datasets.load_diabetes(as_frame=True, scaled=False).frame
    rng = np.random.default_rng(1)
    features = [c for c in frame.columns if c != "target"]
    mask = rng.random((len(frame), len(features))) < 0.05
    frame[features] = frame[features].mask(mask)
    run = {"dataset": {"missing": "impute"}, "estimator": "logistic_regression", "task": "regression"}  # ridge
    return _case("diabetes_missing_imputed", frame, "target", run)


def longley_label_first() -> RegressionCase:
    """statsmodels' longley (16 rows): a header, the total employment first; ridge, 3 folds."""
    frame = pd.read_csv(FIXTURES / "longley.csv")
    run = {"dataset": {"label_column": "TOTEMP"}, "estimator": "ridge", "cv_folds": 3, "task": "regression"}
    return _case("longley_label_first", frame, "TOTEMP", run, min_r2=0.5)


def grunfeld_log() -> RegressionCase:
    """statsmodels' grunfeld: investment (skewed, positive) first, the firm a categorical column; the log transform."""
    frame = pd.read_csv(FIXTURES / "grunfeld.csv")
    run = {
        "dataset": {"label_column": "invest"},
        "estimator": "random_forest",
        "hyperparameters": {"n_estimators": 30},  # enough trees for 176 rows, and a third of the default's time
        "target_transform": "log",
    }
    return _case("grunfeld_log", frame, "invest", run, min_r2=0.6)


@cache
def regression_cases() -> dict[str, RegressionCase]:
    """Every shape, by name."""
    found = [diabetes_no_header(), diabetes_missing_imputed(), longley_label_first(), grunfeld_log()]
    return {case.name: case for case in found}


def held_out_r2(predicted: Any, targets: list[float]) -> float:
    """R² of ``predicted`` against ``targets`` (the mean predictor of the held-out rows scores 0)."""
    truth = np.asarray(targets, dtype=float)
    guessed = np.asarray(predicted, dtype=float)
    return float(1 - np.sum((truth - guessed) ** 2) / np.sum((truth - truth.mean()) ** 2))
