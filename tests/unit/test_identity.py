"""Identities: the same inputs give the same targets; a changed input changes what it must, and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from mlpipe.config import Settings, resolve_run
from mlpipe.exceptions import InvalidRequestError
from mlpipe.identity import TRAINING_CODE_VERSION, identity
from mlpipe.steps import TASKS

SETTINGS = Settings(artifact_root="s3://artifacts-bucket/artifacts", publish_uri="s3://models-bucket/models")
BASE = {"run_date": "2026-01-02", "source_url": "https://example.org/iris.data"}


def ids(**change: Any) -> dict[str, str]:
    execution_id = change.pop("execution_id", None)
    run = resolve_run(BASE | change, SETTINGS, execution_id=execution_id)
    return {task: entry["identity"] for task, entry in run.identities.items()}


def changed(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return [task for task in TASKS if a[task] != b[task]]


def test_the_same_inputs_give_the_same_identities() -> None:
    assert ids() == ids()
    assert identity("model", {"a": 1, "b": [1, 2]}).id == identity("model", {"b": [1, 2], "a": 1}).id


@pytest.mark.parametrize(
    ("change", "rerun"),
    [
        ({"hyperparameters": {"C": 10}}, ["train", "upload"]),
        ({"estimator": "random_forest"}, ["train", "upload"]),
        ({"cv_folds": 3}, ["train", "upload"]),
        ({"source_url": "https://example.org/other.data"}, list(TASKS)),
        ({"dataset": {"missing": "impute"}}, list(TASKS)),
        ({"run_date": "2026-01-03"}, list(TASKS)),
        ({"max_source_bytes": 1000}, []),
        ({"hyperparameters": {"cache_size": 500, "verbose": False}}, []),
        ({"hyperparameters": {"C": 1.0, "kernel": "rbf"}}, []),  # scikit-learn's defaults, spelled out
    ],
)
def test_a_changed_input_changes_the_identities_it_determines(change: dict[str, Any], rerun: list[str]) -> None:
    assert changed(ids(), ids(**change)) == rerun


def test_the_source_enters_under_the_name_the_user_gives_it() -> None:
    named = ids(source_id="sample:iris")
    assert named == ids(source_id="sample:iris", source_url="https://mirror.example.org/iris.data")
    assert named != ids()


@pytest.mark.parametrize(
    ("force", "rerun"),
    [(task, list(TASKS[index:])) for index, task in enumerate(TASKS)],
)
def test_force_gives_that_task_and_every_later_one_a_new_identity(force: str, rerun: list[str]) -> None:
    first = ids(force=force, execution_id="arn:execution:1")
    assert changed(ids(), first) == rerun
    assert changed(first, ids(force=force, execution_id="arn:execution:2")) == rerun


def test_the_model_identity_spells_out_its_inputs() -> None:
    run = resolve_run(BASE | {"hyperparameters": {"C": 2}}, SETTINGS)
    inputs = run.identities["train"]["inputs"]
    assert inputs["dataset"] == run.identities["download"]["identity"]
    assert inputs["estimator"] == "svc"
    assert inputs["hyperparameters"]["C"] == 2
    assert inputs["hyperparameters"]["kernel"] == "rbf"  # defaults filled in
    assert "cache_size" not in inputs["hyperparameters"]
    assert inputs["training_code_version"] == TRAINING_CODE_VERSION
    assert inputs["scikit_learn"].count(".") == 1
    assert inputs["preprocessing"]["scale_numeric"] is True


def test_an_unknown_force_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="force must be one of download, train, upload"):
        resolve_run(BASE | {"force": "everything"}, SETTINGS)


def test_a_daily_source_names_each_dates_file_and_enters_the_identity_with_it() -> None:
    run = resolve_run(BASE | {"source_url": "https://example.org/data/{run_date}.csv"}, SETTINGS)
    assert run.source_url == "https://example.org/data/2026-01-02.csv"
    assert run.identities["download"]["inputs"]["source"] == "https://example.org/data/2026-01-02.csv"


def test_an_integer_for_a_float_parameter_is_the_same_number() -> None:
    assert ids(hyperparameters={"C": 1}) == ids() == ids(hyperparameters={"C": 1.0})
    assert ids(hyperparameters={"C": 2}) == ids(hyperparameters={"C": 2.0}) != ids()
