"""Scale: the fit-time estimate and its guard, estimator auto, holdout above a row count, parallel folds."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from mlpipe import scaling, training
from mlpipe.config import Settings, resolve_run
from mlpipe.estimators import ESTIMATORS, check_estimator, validate_hyperparameters
from mlpipe.exceptions import InvalidHyperparametersError, TrainingTooLargeError
from mlpipe.identity import run_identities
from tests.conftest import SAMPLE
from tests.stores import target as target_for

SETTINGS = Settings(artifact_root="s3://artifacts-bucket/artifacts", publish_uri="s3://models-bucket/iris")


def train(tmp_path: Path, name: str = "model", **options: Any) -> dict[str, Any]:
    """Train on the Iris sample (150 rows, 3 classes) into tmp_path/name; return the card as written."""
    dataset = tmp_path / "iris.data"
    dataset.write_bytes(SAMPLE.read_bytes())
    model = tmp_path / name / "model.pkl"
    options = {"estimator": "svc", "hyperparameters": {}, "cv_folds": 5} | options
    training.train_model(target_for(str(dataset)), target_for(str(model)), **options)
    card: dict[str, Any] = json.loads((model.parent / "metrics.json").read_text())
    return card


# --- the complexity model -------------------------------------------------------------------------
def test_estimate_grows_with_rows_features_and_folds() -> None:
    small = scaling.estimate_seconds("svc", 10_000, 4, 5)
    assert scaling.estimate_seconds("svc", 20_000, 4, 5) > small
    assert scaling.estimate_seconds("svc", 10_000, 8, 5) > small
    ten_folds = scaling.estimate_seconds("svc", 10_000, 4, 10, jobs=1)
    assert ten_folds > scaling.estimate_seconds("svc", 10_000, 4, 5, jobs=1)


def test_estimate_counts_the_fits_side_by_side_except_for_multithreaded_estimators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for estimator in ("logistic_regression", "svc"):
        one, two = (scaling.estimate_seconds(estimator, 10_000, 4, 5, jobs=j) for j in (1, 2))
        assert two == pytest.approx(one / 2)
    hgb = [scaling.estimate_seconds("hist_gradient_boosting", 10_000, 4, 5, jobs=j) for j in (1, 2)]
    assert hgb[0] == hgb[1]
    # However many cores, the longest job (the final fit and its training-accuracy sample) bounds it
    fit, predict_all = (scaling.fit_seconds("svc", 10_000, 4), scaling.PREDICT_FITS["svc"])
    assert scaling.estimate_seconds("svc", 10_000, 4, 5, jobs=64) == pytest.approx(
        scaling.SAFETY * fit * (1 + predict_all)
    )
    # SVC's predictions are counted; on a holdout, only the held-out fifth and the sample are predicted
    with_predictions = scaling.estimate_seconds("svc", 100_000, 4, 5, jobs=1)
    monkeypatch.setattr(scaling, "PREDICT_FITS", {})
    without = scaling.estimate_seconds("svc", 100_000, 4, 5, jobs=1)
    full = scaling.fit_seconds("svc", 100_000, 4)
    assert with_predictions - without == pytest.approx(scaling.SAFETY * predict_all * full * 0.3)


def test_every_estimator_has_fit_constants() -> None:

    assert set(scaling.FIT_CONSTANTS) == set(ESTIMATORS)


def test_the_guard_names_the_estimate_the_time_left_and_what_to_do() -> None:
    with pytest.raises(TrainingTooLargeError) as raised:
        scaling.check_fits(500.0, 300.0, estimator="svc", rows=400_000, features=4)
    message = str(raised.value)
    assert "estimated at 500 s" in message
    assert "300 s left" in message
    assert "estimator: auto" in message
    assert "fewer rows" in message
    assert not TrainingTooLargeError.retryable
    scaling.check_fits(500.0, 600.0, estimator="svc", rows=400_000, features=4)  # fits with the margin
    scaling.check_fits(500.0, None, estimator="svc", rows=400_000, features=4)  # no deadline known


# --- estimator auto -------------------------------------------------------------------------------
def test_auto_fits_svc_on_small_data(tmp_path: Path) -> None:
    card = train(tmp_path, estimator="auto")
    assert card["estimator"]["requested"] == "auto"
    assert card["estimator"]["name"] == "svc"
    assert card["estimator"]["class"] == "sklearn.svm.SVC"
    assert f"<= {scaling.AUTO_SVC_MAX_ROWS}" in card["estimator"]["chosen_because"]
    assert card["preprocessing"]["numeric"]["steps"] == ["standard scaling"]


def test_auto_fits_the_scalable_estimator_above_the_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scaling, "AUTO_SVC_MAX_ROWS", 100)
    card = train(tmp_path, estimator="auto")
    assert card["estimator"]["requested"] == "auto"
    assert card["estimator"]["name"] == scaling.AUTO_SCALABLE == "hist_gradient_boosting"
    assert card["estimator"]["class"] == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert "150 rows > 100" in card["estimator"]["chosen_because"]
    assert card["preprocessing"]["numeric"]["steps"] == ["none"]


def test_a_named_estimator_is_recorded_as_requested(tmp_path: Path) -> None:
    card = train(tmp_path, estimator="logistic_regression")
    assert card["estimator"]["requested"] == card["estimator"]["name"] == "logistic_regression"


def test_plan_accepts_auto_and_refuses_hyperparameters_with_it() -> None:
    assert check_estimator("auto") == "auto"
    assert validate_hyperparameters("auto", {}) == {}
    with pytest.raises(InvalidHyperparametersError, match=r"must be empty with estimator auto.*name the estimator"):
        validate_hyperparameters("auto", {"C": 2.0})
    with pytest.raises(InvalidHyperparametersError, match="must be empty with estimator auto"):
        resolve_run({"run_date": "2026-01-02", "estimator": "auto", "hyperparameters": {"C": 2.0}}, SETTINGS)
    run = resolve_run({"run_date": "2026-01-02", "estimator": "auto"}, SETTINGS)
    assert run.identities["train"]["inputs"]["estimator"] == "auto"
    assert run.identities["train"]["inputs"]["hyperparameters"] == {}


def test_the_identity_of_auto_is_stable_and_differs_from_svc() -> None:
    def model_id(estimator: str) -> str:
        ids = run_identities(
            run_date="2026-01-02",
            source_id="s",
            description={},
            estimator=estimator,
            hyperparameters={},
            cv_folds=5,
        )
        return ids["train"].id

    assert model_id("auto") == model_id("auto")
    assert model_id("auto") != model_id("svc")


# --- the guard, before fitting --------------------------------------------------------------------
def test_training_too_large_fails_before_fitting_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*_: Any, **__: Any) -> Any:
        raise AssertionError("fitted although the estimate does not fit in the time left")

    monkeypatch.setattr(training, "_run_fits", never)
    with pytest.raises(TrainingTooLargeError, match=r"150 rows and 4 features is estimated at .* 10 s left"):
        train(tmp_path, time_left=lambda: 10.0)
    assert not (tmp_path / "model").exists()


def test_training_proceeds_when_the_estimate_fits(tmp_path: Path) -> None:
    card = train(tmp_path, time_left=lambda: 900.0)
    assert 0 < card["fit_estimate"]["seconds"] < 1
    assert card["fit_estimate"]["features"] == 4


# --- holdout and parallel folds -------------------------------------------------------------------
def test_holdout_replaces_k_fold_above_the_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scaling, "HOLDOUT_MIN_ROWS", 100)
    card = train(tmp_path)
    cv = card["cv_accuracy"]
    assert cv["method"] == "stratified 20% holdout (seed 0)"
    assert cv["folds"] == 1
    assert cv["scores"] == [cv["mean"]]
    assert cv["rows_evaluated"] == 30
    matrix = card["cv_metrics"]["confusion_matrix"]["matrix"]
    assert sum(map(sum, matrix)) == 30
    assert [sum(row) for row in matrix] == [10, 10, 10]  # stratified: each class a fifth of its 50 rows


def test_k_fold_below_the_threshold(tmp_path: Path) -> None:
    cv = train(tmp_path)["cv_accuracy"]
    assert cv["method"] == "stratified 5-fold, shuffled (seed 0)"
    assert cv["folds"] == 5
    assert len(cv["scores"]) == 5
    assert cv["rows_evaluated"] == 150


@pytest.mark.parametrize("estimator", ["svc", "logistic_regression"])
@pytest.mark.parametrize("holdout", [False, True])
def test_parallel_folds_give_the_same_model_and_scores_as_sequential(
    estimator: str, holdout: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scaling, "cores", lambda: 4)  # side by side even on a one-core machine
    if holdout:
        monkeypatch.setattr(scaling, "HOLDOUT_MIN_ROWS", 100)
    parallel = train(tmp_path, "parallel", estimator=estimator, parallel=True)
    sequential = train(tmp_path, "sequential", estimator=estimator, parallel=False)
    assert parallel["fit_estimate"]["jobs"] == (2 if holdout else 4)
    assert sequential["fit_estimate"]["jobs"] == 1
    assert parallel["model_sha256"] == sequential["model_sha256"]
    assert parallel["cv_accuracy"] == sequential["cv_accuracy"]
    assert parallel["cv_metrics"] == sequential["cv_metrics"]
    assert (tmp_path / "parallel" / "model.pkl").read_bytes() == (tmp_path / "sequential" / "model.pkl").read_bytes()


def test_training_logs_its_phases(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mlpipe.training"):
        train(tmp_path)
    lines = [r.getMessage() for r in caplog.records if r.name == "mlpipe.training"]
    assert lines[0].startswith("reading ")
    assert any("estimated" in line and "150 rows" in line for line in lines)
    assert any(line.startswith("fitting stratified 5-fold") for line in lines)
    assert any("the final fit (6 of 6 fits)" in line for line in lines)
    assert len(lines) <= 6  # a line per phase, not per fold or row, when folds take less than PROGRESS_SECONDS
    phases = [r.progress["phase"] for r in caplog.records if r.name == "mlpipe.training" and hasattr(r, "progress")]
    assert phases[:3] == ["reading", "estimating", "fitting"]
    assert phases[-1] == "writing"


# --- memory -----------------------------------------------------------------------------------------
def test_the_memory_model_covers_the_measured_peaks() -> None:
    # bench/scale.py's peaks (MB) on Iris-shaped data, 5 columns: the model is at or above each
    measured = {("hist_gradient_boosting", 1_000_000, 1): 554, ("hist_gradient_boosting", 10_000_000, 1): 2611}
    measured[("svc", 100_000, 2)] = 730
    for (estimator, rows, jobs), peak in measured.items():
        estimate = scaling.estimate_memory_mb(estimator, rows, 5, jobs)
        assert peak <= estimate < 1.4 * peak
    assert scaling.estimate_memory_mb("svc", 100_000, 5, 2, cache_mb=1000) > scaling.estimate_memory_mb(
        "svc", 100_000, 5, 2
    )


def test_a_training_that_needs_more_memory_than_the_function_has_fails_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a function of 256 MB (less than the interpreter and libraries alone are estimated at)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
    with pytest.raises(TrainingTooLargeError, match=r"needs about \d+ MB of memory, but the function has 256 MB"):
        train(tmp_path)
    assert not (tmp_path / "model").exists()
    # With the memory the estimate asks for, the same training runs; outside Lambda there is no limit
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3538")
    assert train(tmp_path, name="fits")["rows"] == 150
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    assert scaling.memory_limit_mb() is None
