"""Each task's role writes only its own kind of target, under moto's IAM enforcement (see test_iam_enforced.py).

The threat: the download function handles untrusted HTTP input, so assume its code can be made to
do anything its role allows. It must not be able to plant a ``model-*/model.pkl`` (which train would
take as trained, upload would publish and consumers would unpickle), nor train a dataset or a
published model, nor upload the champion. Each denial is shown twice: through the task's own handler
pointed at the wrong target, and as a bare write with the role's credentials (what injected code would do).
"""

# ruff: noqa: F811 (the tests take the imported fixture as_role as their argument)
from __future__ import annotations

from typing import Any

import boto3
import pytest

from mlpipe.storage import Store
from tests.conftest import ARTIFACTS, MODELS
from tests.integration.test_iam_enforced import (  # noqa: F401 (as_role is a fixture)
    DATASET_KEY,
    DATE,
    MODEL_KEY,
    PUBLISH_PREFIX,
    PUBLISHED_KEY,
    AsRole,
    Invoke,
    as_role,
    denied,
    inputs_of,
    make_inputs,
    run_event,
    written,
)

MODEL_FOLDER = MODEL_KEY.rsplit("/", 1)[0]
DATASET_FOLDER = DATASET_KEY.rsplit("/", 1)[0]
PUBLISHED_FOLDER = PUBLISHED_KEY.rsplit("/", 1)[0]
CHAMPION_KEY = f"{PUBLISH_PREFIX}/iris/champion.json"  # model iris's
HISTORY_KEYS = [
    f"{PUBLISH_PREFIX}/iris/champion-history/20261125T030000.000000Z-published-0123456789ab-abcdef.json",
    f"{PUBLISH_PREFIX}/iris/champion-history/published-0123456789ab/model.pkl",  # matches <prefix>/*/published-*/*
    # and where they were before models had names (pipeline models migrate reads them)
    f"{PUBLISH_PREFIX}/champion.json",
    f"{PUBLISH_PREFIX}/champion-history/published-0123456789ab/model.pkl",
]


def s3(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def write_refused(uri: str) -> None:
    """A bare write of ``uri`` with the current credentials is an access denial."""
    message = denied(lambda: Store.on_this_machine().target(uri).write_bytes(b"planted"))
    assert message.startswith("cannot write"), message


def test_the_download_role_cannot_plant_a_model(aws: Any, http_server: Any, invoke: Invoke, as_role: AsRole) -> None:
    with as_role("DownloadRole"):
        # Its own handler, pointed at the model target: the listing passes, the write is refused
        message = denied(lambda: invoke("download", run_event(http_server, dataset_uri=s3(ARTIFACTS, MODEL_KEY))))
        assert message.startswith("cannot write")
        for key in (MODEL_KEY, f"{MODEL_FOLDER}/metrics.json"):
            write_refused(s3(ARTIFACTS, key))
        for key in (PUBLISHED_KEY, f"{PUBLISHED_FOLDER}/metrics.json", CHAMPION_KEY, *HISTORY_KEYS):
            write_refused(s3(MODELS, key))
    assert written(aws) == {ARTIFACTS: [], MODELS: []}


def test_the_train_role_cannot_write_a_dataset_or_a_published_model(
    aws: Any, http_server: Any, invoke: Invoke, as_role: AsRole
) -> None:
    make_inputs(invoke, http_server, "download")
    before = written(aws)
    elsewhere = s3(ARTIFACTS, f"artifacts/{DATE}/dataset-ba9876543210/model.pkl")
    with as_role("TrainRole"):
        # Its own handler, writing its model into a dataset folder: trained, then refused at the write
        message = denied(lambda: invoke("train", run_event(http_server, model_uri=elsewhere)))
        assert message.startswith("cannot write")
        for key in (DATASET_KEY, f"{DATASET_FOLDER}/lineage.json"):
            write_refused(s3(ARTIFACTS, key))
        for key in (PUBLISHED_KEY, f"{PUBLISHED_FOLDER}/metrics.json", CHAMPION_KEY, *HISTORY_KEYS):
            write_refused(s3(MODELS, key))
    assert written(aws) == before


def test_the_upload_role_cannot_write_the_champion_or_its_history(
    aws: Any, http_server: Any, invoke: Invoke, as_role: AsRole
) -> None:
    make_inputs(invoke, http_server, *inputs_of("upload"))
    before = written(aws)
    with as_role("UploadRole"):
        # Its own handler, publishing under champion-history/ (a published-* folder there): refused
        look_alike = s3(MODELS, HISTORY_KEYS[1])
        assert denied(lambda: invoke("upload", run_event(http_server, published_uri=look_alike))).startswith(
            "cannot write"
        )
        for key in (CHAMPION_KEY, *HISTORY_KEYS):
            write_refused(s3(MODELS, key))
        for key in (MODEL_KEY, DATASET_KEY):
            write_refused(s3(ARTIFACTS, key))
    assert written(aws) == before


@pytest.mark.parametrize("role", ["DownloadRole", "TrainRole", "UploadRole"])
def test_no_task_role_may_overwrite_a_model_without_the_condition(
    aws: Any, http_server: Any, invoke: Invoke, as_role: AsRole, role: str
) -> None:
    # A bare PutObject (no If-None-Match), as injected code would send it, on the trained model of an earlier run
    make_inputs(invoke, http_server, *inputs_of("upload"))
    before = written(aws)
    with as_role(role):
        client = boto3.client("s3")
        targets = {"DownloadRole": [(ARTIFACTS, MODEL_KEY)], "TrainRole": [(MODELS, PUBLISHED_KEY)]}.get(
            role, [(ARTIFACTS, MODEL_KEY), (MODELS, CHAMPION_KEY)]
        )
        for bucket, key in targets:
            with pytest.raises(client.exceptions.ClientError, match="AccessDenied"):
                client.put_object(Bucket=bucket, Key=key, Body=b"planted")
    assert written(aws) == before
