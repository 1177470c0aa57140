"""Settings and runs: run dates from the schedule, defaults and overrides, what a run's URIs are."""

from __future__ import annotations

import datetime as dt

import pytest

from mlpipe.config import Settings, resolve_run
from mlpipe.description import DatasetDescription
from mlpipe.estimators import validate_hyperparameters
from mlpipe.exceptions import InvalidHyperparametersError, InvalidRequestError
from mlpipe.steps import FAMILIES, TASKS

SETTINGS = Settings(
    artifact_root="s3://artifacts-bucket/artifacts",
    publish_uri="s3://models-bucket/iris",
    timezone="Europe/Berlin",
    hyperparameters={"C": 2.0},
)


def test_scheduled_time_becomes_the_date_in_the_schedules_timezone() -> None:
    # 23:30 UTC on the 24th is 00:30 on the 25th in Berlin
    run = resolve_run({"trigger": "schedule", "scheduled_time": "2026-11-24T23:30:00Z"}, SETTINGS)
    assert run.run_date == "2026-11-25"


def test_an_on_demand_run_defaults_to_today_utc() -> None:
    now = dt.datetime(2026, 3, 1, 0, 5, tzinfo=dt.UTC)
    assert resolve_run({}, SETTINGS, now=now).run_date == "2026-03-01"


def test_run_date_wins_over_the_scheduled_time() -> None:
    run = resolve_run({"run_date": "2026-01-02", "scheduled_time": "2026-11-24T23:30:00Z"}, SETTINGS)
    assert run.run_date == "2026-01-02"


def test_every_target_is_keyed_by_the_run_date_and_its_identity() -> None:
    run = resolve_run({"run_date": "2026-01-02"}, SETTINGS)
    ids = {task: entry["identity"] for task, entry in run.identities.items()}
    assert run.dataset_uri == f"s3://artifacts-bucket/artifacts/2026-01-02/{ids['download']}/dataset.csv"
    assert run.model_uri == f"s3://artifacts-bucket/artifacts/2026-01-02/{ids['train']}/model.pkl"
    assert run.published_uri == f"s3://models-bucket/iris/iris/2026-01-02/{ids['upload']}/model.pkl"
    assert {task: ids[task].split("-")[0] for task in TASKS} == FAMILIES


def test_input_hyperparameters_are_merged_over_the_deployed_ones() -> None:
    run = resolve_run({"run_date": "2026-01-02", "hyperparameters": {"kernel": "linear"}}, SETTINGS)
    assert run.hyperparameters == {"C": 2.0, "kernel": "linear"}


def test_missing_roots_say_how_to_set_them() -> None:
    with pytest.raises(InvalidRequestError, match="artifact_root is not set: pass it in the execution input"):
        resolve_run({"run_date": "2026-01-02"}, Settings())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HYPERPARAMETERS": "{C: 1}"}, "HYPERPARAMETERS is not valid JSON"),
        ({"HYPERPARAMETERS": '{"C": 0}'}, r"C must be a float in \(0, inf\], got 0"),
        ({"ESTIMATOR": "xgboost"}, "estimator must be one of svc"),
        ({"DATASET_DESCRIPTION": '{"delimiter": ":"}'}, "DATASET_DESCRIPTION.delimiter must be one of"),
        ({"CV_FOLDS": "five"}, "not a number"),
        ({"CV_FOLDS": "1"}, "CV_FOLDS must be an integer of at least 2"),
        ({"TIMEZONE": "Mars/Olympus"}, "not an IANA timezone"),
        ({"MLPIPE_ALLOW_LOCAL_STORAGE": "maybe"}, "must be true or false"),
        ({"SOURCE_READ_TIMEOUT_SECONDS": "0"}, "must be > 0"),
    ],
)
def test_bad_settings_fail_fast_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "value",
    [
        {"C": True},
        {"C": float("nan")},
        {"degree": 2.5},
        {"gamma": "sometimes"},
        {"class_weight": "unbalanced"},
        {"max_iter": -2},
        {"random_state": -1},
        {"decision_function_shape": "ovx"},
        {"shrinking": "yes"},
    ],
)
def test_hyperparameters_of_the_wrong_type_or_range_are_refused(value: dict[str, object]) -> None:
    with pytest.raises(InvalidHyperparametersError, match=next(iter(value))):
        validate_hyperparameters("svc", value)


def test_valid_hyperparameters_pass_unchanged() -> None:
    value = {"C": 0.5, "kernel": "poly", "degree": 2, "gamma": "auto", "class_weight": "balanced", "random_state": 0}
    assert validate_hyperparameters("svc", value) == value


def test_another_estimator_starts_from_its_own_defaults_not_the_deployed_svc_ones() -> None:
    run = resolve_run({"run_date": "2026-01-02", "estimator": "random_forest"}, SETTINGS)
    assert (run.estimator, run.hyperparameters) == ("random_forest", {})
    with pytest.raises(InvalidHyperparametersError, match=r"'C' is a parameter of .*not of random_forest"):
        resolve_run({"run_date": "2026-01-02", "estimator": "random_forest", "hyperparameters": {"C": 1}}, SETTINGS)


def test_the_input_description_is_merged_over_the_deployed_one() -> None:
    settings = Settings(
        artifact_root="s3://a-bucket/artifacts",
        publish_uri="s3://m-bucket/models",
        dataset=DatasetDescription.from_value({"delimiter": ";", "label_column": "y"}),
    )
    run = resolve_run({"run_date": "2026-01-02", "dataset": {"missing": "impute"}}, settings)
    assert (run.dataset["delimiter"], run.dataset["label_column"], run.dataset["missing"]) == (";", "y", "impute")
    with pytest.raises(InvalidRequestError, match=r"dataset\.label_column must be a column name"):
        resolve_run({"run_date": "2026-01-02", "dataset": {"label_column": True}}, settings)


@pytest.mark.parametrize("value", ["2026-2-2", "02/02/2026", "tomorrow"])
def test_a_run_date_string_in_the_wrong_shape_names_the_format_only(value: str) -> None:
    with pytest.raises(InvalidRequestError, match="YYYY-MM-DD") as error:
        resolve_run({"run_date": value}, SETTINGS)
    assert "must be a string" not in str(error.value)


def test_a_run_date_that_is_not_a_string_says_so() -> None:
    with pytest.raises(InvalidRequestError, match="must be a string YYYY-MM-DD"):
        resolve_run({"run_date": 20260202}, SETTINGS)
