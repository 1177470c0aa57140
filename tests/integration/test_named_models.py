"""Named models through the real ASL on moto: each model its own champion, the promotion policy, bad names.

Both stores: a local directory and S3 (moto). The second model is UCI's wine data (three classes 1, 2, 3,
13 features), beside the Iris sample: each keeps its champion and predicts its own classes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlpipe import load_champion
from mlpipe.champion import read_champion
from mlpipe.config import Settings
from mlpipe.naming import model_location
from pipeline_local.cli.registry import Deployment, put_model
from pipeline_local.cli.runs import format_summary
from pipeline_local.runner import LocalPipeline
from tests.conftest import ARTIFACTS, MODELS, s3_keys
from tests.datasets import wine_uci
from tests.integration.conftest import DATE, states
from tests.stores import store

CONFIGS = f"s3://{MODELS}/model-configs"
GROUP = "mlpipe-test-schedules"


@pytest.fixture(params=["local", "s3"])
def roots(request: pytest.FixtureRequest, aws: Any, tmp_path: Path) -> dict[str, str]:
    """The artifact root and the publish root, in a local directory or in S3."""
    if request.param == "local":
        return {"artifact_root": str(tmp_path / "artifacts"), "publish_uri": str(tmp_path / "published")}
    return {"artifact_root": f"s3://{ARTIFACTS}/runs", "publish_uri": f"s3://{MODELS}/published"}


@pytest.fixture
def wine(http_server: Any) -> dict[str, Any]:
    """A second model's input: the wine data served beside the Iris sample."""
    case = wine_uci()
    (http_server.root / "wine.data").write_bytes(case.body)
    return {"source_url": http_server.url("/wine.data"), "source_id": "test:wine", "dataset": case.description}


@pytest.fixture
def iris(http_server: Any) -> dict[str, Any]:
    return {"run_date": DATE, "source_url": http_server.url(), "source_id": "test:iris"}


def two_class_iris(http_server: Any) -> dict[str, Any]:
    """The Iris sample without its Iris-virginica rows: another label set for the same columns."""
    rows = [line for line in (http_server.root / "iris.data").read_text().splitlines() if "virginica" not in line]
    (http_server.root / "iris2.data").write_text("\n".join(rows) + "\n")
    return {"run_date": DATE, "source_url": http_server.url("/iris2.data"), "source_id": "test:iris2"}


def champion_of(roots: dict[str, str], model: str) -> dict[str, Any] | None:
    return read_champion(model_location(roots["publish_uri"], model), store=store())


def test_two_models_in_one_root_each_keep_their_champion_and_predict_their_own_classes(
    roots: dict[str, str], iris: dict[str, Any], wine: dict[str, Any], http_server: Any
) -> None:
    pipeline = LocalPipeline(retry_delay_scale=0.0)
    first = pipeline.run(iris | roots)
    second = pipeline.run(iris | wine | roots | {"model": "wine"})
    assert (first["status"], second["status"]) == ("SUCCEEDED", "SUCCEEDED")
    assert (first["model"], second["model"]) == ("iris", "wine")
    assert second["champion"]["reason"].endswith("to the first champion")  # not replacing Iris's
    iris_model, iris_card = load_champion(roots["publish_uri"], model="iris", store=store())
    wine_model, wine_card = load_champion(roots["publish_uri"], model="wine", store=store())
    assert set(iris_model.predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])) <= set(iris_card["classes"])
    assert iris_model.predict([[5.1, 3.5, 1.4, 0.2]])[0] == "Iris-setosa"
    case = wine_uci()
    assert list(wine_model.predict(case.holdout.head(5))) == case.holdout_labels[:5]
    assert sorted(wine_card["classes"]) == [1, 2, 3]
    for model, card in (("iris", iris_card), ("wine", wine_card)):
        manifest = champion_of(roots, model)
        assert manifest is not None
        assert manifest["model"] == model
        assert manifest["model_uri"].startswith(store().target(model_location(roots["publish_uri"], model)).uri)
        assert manifest["sha256"] == card["model_sha256"]
    with pytest.raises(Exception, match=r"several models \(iris, wine\)"):
        load_champion(roots["publish_uri"], store=store())


def test_a_worse_model_on_the_same_dataset_is_published_but_not_champion_and_the_summary_shows_both_scores(
    aws: Any, iris: dict[str, Any]
) -> None:
    roots = {"artifact_root": f"s3://{ARTIFACTS}/runs", "publish_uri": f"s3://{MODELS}/published"}
    pipeline = LocalPipeline(retry_delay_scale=0.0)
    good = pipeline.run(iris | roots)
    worse = pipeline.run(iris | roots | {"estimator": "logistic_regression", "hyperparameters": {"C": 1e-6}})
    assert worse["status"] == "SUCCEEDED"
    assert states(worse) == {"download": "present", "train": "ran", "upload": "ran"}
    assert worse["champion"]["promoted"] is False
    ours, theirs = worse["gate"]["cv_accuracy"], good["gate"]["cv_accuracy"]
    assert ours < theirs
    assert worse["champion"]["reason"].startswith(
        f"not promoted: its CV accuracy {ours:.4f} is below the champion's {theirs:.4f} on the same dataset"
    )
    assert champion_of(roots, "iris")["identity"] == good["champion"]["identity"]  # type: ignore[index]
    published = worse["tasks"]["upload"]["target"].split("/", 3)[3]
    assert published in s3_keys(boto3.client("s3"), MODELS)
    text = format_summary(worse)
    assert f"score:     CV accuracy {ours:.4f}; the champion {good['champion']['identity']}'s {theirs:.4f}" in text
    assert f"gate:      passed: CV accuracy {ours:.4f} meets the threshold 0.3333 (the baseline" in text
    assert "promotion: not promoted: its CV accuracy" in text


def test_data_with_another_label_set_is_refused_in_the_download_and_nothing_is_written(
    tmp_path: Path, aws: Any, iris: dict[str, Any], http_server: Any
) -> None:
    roots = {"artifact_root": str(tmp_path / "artifacts"), "publish_uri": str(tmp_path / "published")}
    pipeline = LocalPipeline(retry_delay_scale=0.0)
    pipeline.run(iris | roots)
    before = champion_of(roots, "iris")
    refused = pipeline.run(two_class_iris(http_server) | roots)
    # The champion's data contract finds the lost class before training (the gate would refuse the model after it)
    assert refused["status"] == "FAILED"
    assert refused["error"]["task"] == "download"
    assert refused["error"]["type"] == "SchemaChangedError"
    assert "no row has the class(es) Iris-virginica" in refused["error"]["message"]
    assert states(refused) == {"download": "failed", "train": "not_run", "upload": "not_run"}
    assert not Path(refused["tasks"]["download"]["target"].removeprefix("file://")).parent.exists()
    assert not Path(refused["tasks"]["upload"]["target"].removeprefix("file://")).parent.exists()
    assert champion_of(roots, "iris") == before


def test_a_model_added_with_its_document_runs_from_its_schedules_input_alone(
    aws: Any, iris: dict[str, Any], wine: dict[str, Any]
) -> None:
    # Given a deployment with model documents and a schedule group, and a second model put there
    roots = {"ARTIFACT_ROOT": f"s3://{ARTIFACTS}/runs", "PUBLISH_URI": f"s3://{MODELS}/published"}
    pipeline = LocalPipeline(retry_delay_scale=0.0, env={"MODEL_CONFIGS_URI": CONFIGS, **roots})
    scheduler = boto3.client("scheduler")
    scheduler.create_schedule_group(Name=GROUP)
    deployment = Deployment(
        configs_uri=CONFIGS,
        schedule_group=GROUP,
        schedule_role_arn="arn:aws:iam::123456789012:role/schedule",
        dead_letter_arn="arn:aws:sqs:us-east-1:123456789012:dead-letters",
        state_machine_arn=pipeline.state_machine_arn,
    )
    document = wine | {"estimator": "random_forest", "schedule": {"expression": "cron(0 4 * * ? *)"}}
    local = Settings(allow_loopback_sources=True)  # the test's source is on 127.0.0.1, as the pipeline's is here
    put_model(deployment, "wine", document, store=store(), scheduler=scheduler, settings=local)
    # When the schedule's stored input starts a run (moto's Scheduler never fires: the input is run by hand)
    stored = scheduler.get_schedule(Name="wine", GroupName=GROUP)
    assert stored["Target"]["Arn"] == pipeline.state_machine_arn
    assert stored["Target"]["DeadLetterConfig"] == {"Arn": deployment.dead_letter_arn}
    execution_input = json.loads(stored["Target"]["Input"])
    assert execution_input == {
        "model": "wine",
        "trigger": "schedule",
        "scheduled_time": "<aws.scheduler.scheduled-time>",
    }
    summary = pipeline.run(execution_input | {"scheduled_time": f"{DATE}T04:00:00Z"})
    # Then the plan took the source, description and estimator from the document
    assert summary["status"] == "SUCCEEDED", summary
    manifest = champion_of({"publish_uri": roots["PUBLISH_URI"]}, "wine")
    assert manifest is not None
    assert (manifest["estimator"], sorted(manifest["classes"])) == ("random_forest", [1, 2, 3])
    # And a schedule's input naming a model that has no document is a named error, with nothing written
    keys = s3_keys(boto3.client("s3"), ARTIFACTS)
    unknown = pipeline.run(execution_input | {"model": "penguins", "scheduled_time": f"{DATE}T04:00:00Z"})
    assert (unknown["error"]["task"], unknown["error"]["type"]) == ("plan", "UnknownModelError")
    assert "pipeline models put penguins" in unknown["error"]["message"]
    assert s3_keys(boto3.client("s3"), ARTIFACTS) == keys


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ({"model": "Iris!"}, "InvalidModelNameError"),
        ({"model": "2026-01-01"}, "InvalidModelNameError"),
    ],
    ids=["not a name", "a run date"],
)
def test_a_bad_model_name_fails_the_plan_with_nothing_written(
    tmp_path: Path, aws: Any, iris: dict[str, Any], given: dict[str, Any], error: str
) -> None:
    roots = {"artifact_root": str(tmp_path / "artifacts"), "publish_uri": str(tmp_path / "published")}
    summary = LocalPipeline(retry_delay_scale=0.0).run(iris | roots | given)
    assert (summary["error"]["task"], summary["error"]["type"]) == ("plan", error)
    assert not (tmp_path / "artifacts").exists()
    assert not (tmp_path / "published").exists()
