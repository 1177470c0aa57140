"""Lineage through the real ASL: a changed input reruns what it determines, force reruns on purpose,
nothing is ever overwritten, and every output records what made it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from mlpipe.steps import TASKS
from pipeline_local.runner import LocalPipeline
from tests.conftest import ARTIFACTS, MODELS, s3_keys, s3_versions
from tests.integration.conftest import DATE, SOURCE_ID, states

Input = Callable[..., dict[str, Any]]


def key(uri: str) -> str:
    return uri.split("/", 3)[3]


def card(aws: Any, model_uri: str) -> dict[str, Any]:
    bucket, path = model_uri[5:].split("/", 1)
    result: dict[str, Any] = json.loads(
        aws.get_object(Bucket=bucket, Key=path.rsplit("/", 1)[0] + "/metrics.json")["Body"].read()
    )
    return result


def test_changed_hyperparameters_retrain_beside_the_first_model_and_the_first_inputs_are_present_again(
    aws: Any, pipeline: LocalPipeline, run_input: Input, http_server: Any
) -> None:
    first = pipeline.run(run_input())
    requests = len(http_server.requests)
    # When the same date runs with other hyperparameters
    changed = pipeline.run(run_input(hyperparameters={"C": 10}))
    # Then the dataset is reused, and a second model is trained and published beside the first
    assert states(changed) == {"download": "present", "train": "ran", "upload": "ran"}
    assert len(http_server.requests) == requests
    assert changed["tasks"]["download"]["target"] == first["tasks"]["download"]["target"]
    for task in ("train", "upload"):
        assert changed["tasks"][task]["target"] != first["tasks"][task]["target"]
    published = [key(s["tasks"]["upload"]["target"]) for s in (first, changed)]
    assert set(published) <= set(s3_keys(aws, MODELS))
    assert [s3_versions(aws, MODELS, k) for k in published] == [1, 1]
    assert card(aws, changed["tasks"]["upload"]["target"])["estimator"]["hyperparameters"]["C"] == 10
    # And the first inputs again find everything present
    again = pipeline.run(run_input())
    assert states(again) == dict.fromkeys(TASKS, "present")
    assert again["tasks"] == first["tasks"] | {t: {**first["tasks"][t], "state": "present"} for t in first["tasks"]}


def test_another_estimator_for_the_date_retrains_and_another_source_makes_a_new_dataset(
    aws: Any, pipeline: LocalPipeline, run_input: Input, http_server: Any
) -> None:
    pipeline.run(run_input())
    estimator = pipeline.run(run_input(estimator="logistic_regression"))
    assert states(estimator) == {"download": "present", "train": "ran", "upload": "ran"}
    (http_server.root / "other.data").write_bytes((http_server.root / "iris.data").read_bytes())
    requests = len(http_server.requests)
    source = pipeline.run(run_input(source_url=http_server.url("/other.data"), source_id="test:other"))
    assert states(source) == dict.fromkeys(TASKS, "ran")
    assert len(http_server.requests) == requests + 1
    description = pipeline.run(run_input(dataset={"header": "false"}))
    assert states(description) == dict.fromkeys(TASKS, "ran")
    assert all(s3_versions(aws, ARTIFACTS, k) == 1 for k in s3_keys(aws, ARTIFACTS))


@pytest.mark.parametrize(
    ("force", "expected"),
    [
        ("train", {"download": "present", "train": "ran", "upload": "ran"}),
        ("upload", {"download": "present", "train": "present", "upload": "ran"}),
        ("download", dict.fromkeys(TASKS, "ran")),
    ],
)
def test_force_reruns_that_task_and_every_later_one_under_new_targets(
    force: str, expected: dict[str, str], aws: Any, pipeline: LocalPipeline, run_input: Input, http_server: Any
) -> None:
    first = pipeline.run(run_input())
    before = {bucket: s3_keys(aws, bucket) for bucket in (ARTIFACTS, MODELS)}
    requests = len(http_server.requests)
    forced = pipeline.run(run_input(force=force))
    assert states(forced) == expected
    assert len(http_server.requests) == requests + (1 if force == "download" else 0)  # forcing download refetches
    for task, state in expected.items():
        same = forced["tasks"][task]["target"] == first["tasks"][task]["target"]
        assert same is (state == "present"), task
    # The history stays: every earlier object is still there, written once.
    for bucket, keys in before.items():
        assert set(keys) <= set(s3_keys(aws, bucket))
        # champion.json and the champion's contract.json change with the champion (compare-and-swap, sha256-linked)
        mutable = ("champion.json", "contract.json")
        assert all(s3_versions(aws, bucket, k) == 1 for k in keys if not k.endswith(mutable))
    # A second force makes yet another target (the execution is part of the identity).
    assert pipeline.run(run_input(force=force))["tasks"]["upload"]["target"] != forced["tasks"]["upload"]["target"]


def test_a_published_model_traces_back_to_the_dataset_bytes_and_parameters(
    aws: Any, pipeline: LocalPipeline, run_input: Input
) -> None:
    summary = pipeline.run(run_input(hyperparameters={"C": 2}))
    dataset_uri, model_uri, published_uri = (summary["tasks"][t]["target"] for t in TASKS)
    published = card(aws, published_uri)
    publication = published["publication"]
    assert publication["identity"] == key(published_uri).split("/")[-2]
    assert publication["inputs"] == {"model": key(model_uri).split("/")[2]}
    assert publication["input_targets"][0]["uri"] == model_uri
    assert publication["input_targets"][0]["sha256"] == published["model_sha256"]
    assert publication["execution_id"].startswith("arn:aws:states:")
    lineage = published["lineage"]
    assert lineage["identity"] == key(model_uri).split("/")[2]
    assert lineage["inputs"]["dataset"] == key(dataset_uri).split("/")[2]
    assert lineage["inputs"]["hyperparameters"]["C"] == 2
    assert lineage["inputs"]["estimator"] == "svc"
    dataset_bytes = aws.get_object(Bucket=ARTIFACTS, Key=key(dataset_uri))["Body"].read()
    assert lineage["input_targets"] == [{"uri": dataset_uri, "sha256": hashlib.sha256(dataset_bytes).hexdigest()}]
    assert set(lineage["versions"]) >= {"mlpipe", "python", "scikit_learn", "numpy", "pandas"}
    record = json.loads(
        aws.get_object(Bucket=ARTIFACTS, Key=key(dataset_uri).replace("dataset.csv", "lineage.json"))["Body"].read()
    )
    assert record["identity"] == lineage["inputs"]["dataset"]
    assert record["inputs"]["source"] == SOURCE_ID
    assert record["inputs"]["run_date"] == DATE
    assert record["output"]["sha256"] == hashlib.sha256(dataset_bytes).hexdigest()
    assert record["created_at"].startswith("20")
