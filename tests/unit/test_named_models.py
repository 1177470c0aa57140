"""Model names, model documents and the migration of a publish root from before models had names (no state machine)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlpipe.champion import champion_uri, promote, read_champion
from mlpipe.config import Run, Settings, resolve_run
from mlpipe.exceptions import (
    InvalidModelConfigError,
    InvalidModelNameError,
    InvalidRequestError,
    LegacyPublishLayoutError,
    UnknownModelError,
)
from mlpipe.modelconfig import validate_config, with_model_config
from mlpipe.naming import check_model_name, choose_model, model_location
from mlpipe.planning import check_migrated
from pipeline_local.cli.registry import Deployment, deployment_of_stack, migrate, put_model, remove_model
from tests.cards import publish_fake
from tests.conftest import MODELS
from tests.stores import store

DAY = "2026-11-25"
ROOTS = {"artifact_root": "s3://art-bucket/artifacts", "publish_uri": "s3://pub-bucket/published"}


@pytest.mark.parametrize("name", ["iris", "penguins-2", "0", "a" * 63])
def test_a_model_name_is_lowercase_letters_digits_and_dashes(name: str) -> None:
    assert check_model_name(name) == name


@pytest.mark.parametrize("name", ["", "Iris", "-x", "a" * 64, "a/b", "a.b", None, 5, "2026-01-01", "champion-history"])
def test_anything_else_is_a_named_error(name: Any) -> None:
    with pytest.raises(InvalidModelNameError, match="is not a model name"):
        check_model_name(name)


def test_each_model_has_its_own_published_location_and_shares_the_intermediates() -> None:
    settings = Settings(**ROOTS)
    iris = resolve_run({"run_date": DAY}, settings)
    other = resolve_run({"run_date": DAY, "model": "other"}, settings)
    assert iris.model == "iris"
    assert iris.publish_root == "s3://pub-bucket/published/iris"
    assert other.publish_root == "s3://pub-bucket/published/other"
    assert other.published_uri.startswith("s3://pub-bucket/published/other/2026-11-25/published-")
    assert other.dataset_uri == iris.dataset_uri  # the same data, the same dataset
    assert other.model_uri == iris.model_uri  # trained alike: the same model, published under each name
    assert resolve_run({"run_date": DAY}, Settings(**ROOTS, model_name="wine")).model == "wine"


def test_a_command_without_a_model_takes_the_only_one_and_several_are_an_error(tmp_path: Path) -> None:
    root = str(tmp_path / "published")
    assert choose_model(root, None, store=store()) == "iris"
    publish_fake(model_location(root, "wine"), DAY, "aaaa")
    assert choose_model(root, None, store=store()) == "wine"
    publish_fake(model_location(root, "iris"), DAY, "bbbb")
    with pytest.raises(UnknownModelError, match=r"several models \(iris, wine\): name one with --model"):
        choose_model(root, None, store=store())
    with pytest.raises(UnknownModelError, match=r"there is no model 'penguins' .*the models there are iris, wine"):
        choose_model(root, "penguins", store=store())


# --- model documents -----------------------------------------------------------------------------------------------
GOOD = {
    "source_url": "https://example.org/penguins.csv",
    "dataset": {"label_column": "species"},
    "estimator": "random_forest",
    "hyperparameters": {"n_estimators": 50},
    "min_cv_accuracy": 0.8,
    "schedule": {"expression": "cron(0 4 * * ? *)", "timezone": "Europe/Berlin"},
}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"run_date": DAY}, "penguins.json: run_date; allowed: cv_folds, dataset"),
        ({"hyperparameters": {"n_estimators": "many"}}, "n_estimators"),
        ({"estimator": "xgboost"}, "xgboost"),
        ({"source_url": "ftp://example.org/x"}, "ftp"),
        ({"min_cv_accuracy": 2}, "min_cv_accuracy must be a number between 0 and 1"),
        ({"schedule": {"expression": "daily"}}, "schedule.expression must be an EventBridge Scheduler expression"),
        ({"schedule": {"expression": "rate(1 day)", "timezone": "Mars/Olympus"}}, "Mars/Olympus"),
    ],
    ids=[
        "a run's field",
        "a bad hyperparameter",
        "an unknown estimator",
        "a bad source",
        "a bad gate",
        "schedule",
        "tz",
    ],
)
def test_a_document_the_plan_would_refuse_is_refused_by_put_and_nothing_is_written(
    tmp_path: Path, change: dict[str, Any], says: str
) -> None:
    deployment = Deployment(configs_uri=str(tmp_path / "configs"))
    with pytest.raises(InvalidModelConfigError, match="is not a valid model configuration") as raised:
        put_model(deployment, "penguins", GOOD | change, store=store())
    assert says in str(raised.value)
    assert not (tmp_path / "configs").exists()


def test_put_writes_the_checked_document_and_the_plan_reads_it_under_the_input(tmp_path: Path) -> None:
    configs = str(tmp_path / "configs")
    put_model(Deployment(configs_uri=configs), "penguins", GOOD, store=store())
    settings = Settings(**ROOTS, model_configs_uri=configs, allow_local_storage=True)
    merged = with_model_config({"model": "penguins", "run_date": DAY, "cv_folds": 3}, settings, store=store())
    assert merged["estimator"] == "random_forest"
    assert merged["cv_folds"] == 3  # the input wins
    assert "schedule" not in merged
    run = resolve_run(merged, settings)
    assert (run.model, run.hyperparameters["n_estimators"], run.min_cv_accuracy) == ("penguins", 50, 0.8)
    assert remove_model(Deployment(configs_uri=configs), "penguins", store=store())["schedule_removed"] is False
    with pytest.raises(UnknownModelError, match="there is no model 'penguins'"):
        remove_model(Deployment(configs_uri=configs), "penguins", store=store())


def test_a_document_changed_by_hand_into_an_invalid_one_fails_the_plan_naming_it(aws: Any) -> None:
    boto3.client("s3").put_object(Bucket=MODELS, Key="model-configs/penguins.json", Body=b'{"estimator": "nope"}')
    settings = Settings(**ROOTS, model_configs_uri=f"s3://{MODELS}/model-configs")
    with pytest.raises(InvalidModelConfigError, match=rf"s3://{MODELS}/model-configs/penguins.json is not a valid"):
        with_model_config({"model": "penguins"}, settings, store=store())


def test_without_a_document_the_deployments_model_and_an_ad_hoc_run_go_on_and_another_name_alone_fails(
    tmp_path: Path,
) -> None:
    settings = Settings(**ROOTS, model_configs_uri=str(tmp_path / "none"), allow_local_storage=True)
    assert with_model_config({"model": "iris"}, settings, store=store()) == {"model": "iris"}
    ad_hoc = {"model": "x", "source_url": "https://example.org/x.csv"}
    assert with_model_config(ad_hoc, settings, store=store()) == ad_hoc
    with pytest.raises(UnknownModelError, match="pipeline models put penguins"):
        with_model_config({"model": "penguins", "trigger": "schedule"}, settings, store=store())


def test_validate_config_keeps_only_the_models_fields() -> None:
    checked = validate_config("penguins", GOOD, Settings())
    assert checked["schedule"] == {"expression": "cron(0 4 * * ? *)", "timezone": "Europe/Berlin", "enabled": True}


# --- migration -----------------------------------------------------------------------------------------------------
def test_a_publish_root_from_before_names_stops_the_plan_until_migrated_and_migrate_moves_its_champion(
    tmp_path: Path,
) -> None:
    root = str(tmp_path / "published")
    old = publish_fake(root, DAY, "aaaa", accuracy=0.9)
    promote(root, old, DAY, promoted_by="old", store=store())
    run = Run(run_date=DAY, model="iris", publish_root=model_location(root, "iris"))
    with pytest.raises(LegacyPublishLayoutError, match="pipeline models migrate --publish-uri"):
        check_migrated(run, store=store())
    result = migrate(root, "iris", store=store())
    check_migrated(run, store=store())  # now it has its own champion
    manifest = read_champion(model_location(root, "iris"), store=store())
    assert manifest is not None
    assert manifest["model"] == "iris"
    assert manifest["model_uri"] == result["champion"]
    assert manifest["model_uri"].endswith(f"/published/iris/{DAY}/published-aaaa/model.pkl")
    copy = store().target(manifest["model_uri"]).read_bytes()
    assert hashlib.sha256(copy).hexdigest() == manifest["sha256"]  # the copy is the champion's bytes
    assert (tmp_path / "published" / "champion.json").exists()  # the old one stays
    with pytest.raises(Exception, match="already has a champion"):
        migrate(root, "iris", store=store())
    history = json.loads(Path(champion_uri(model_location(root, "iris")).removeprefix("file://")).read_text())
    assert history["identity"] == "published-aaaa"


class _Stacks:
    """A CloudFormation client that describes one stack with the given outputs."""

    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        return {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]}]}


def test_a_stacks_outputs_name_where_documents_and_schedules_go_and_an_older_stack_is_a_named_error() -> None:
    outputs = {
        "ModelConfigsUri": f"s3://{MODELS}/model-configs",
        "ScheduleGroupName": "group",
        "ScheduleRoleArn": "arn:aws:iam::1:role/r",
        "ScheduleDeadLetterQueueArn": "arn:aws:sqs:us-east-1:1:q",
        "StateMachineArn": "arn:aws:states:us-east-1:1:stateMachine:s",
    }
    deployment = deployment_of_stack("mlpipe", _Stacks(outputs))
    assert deployment.schedules is True
    assert (deployment.configs_uri, deployment.schedule_group) == (f"s3://{MODELS}/model-configs", "group")
    del outputs["ScheduleGroupName"]
    with pytest.raises(InvalidRequestError, match=r"has no output.*ScheduleGroupName: deploy this version"):
        deployment_of_stack("mlpipe", _Stacks(outputs))
