"""Each role may write only its own targets: the template's S3 statements, evaluated over one key of every kind.

The evaluation is IAM's for identity policies without conditions: a statement applies when one of its
actions and one of its resources match (``*`` any run of characters, ``/`` included; ``?`` one), an
explicit Deny wins over any Allow, and nothing is allowed without an Allow. The policies are the
SAM-transformed template's, resolved to the enforced test's buckets (tests/integration/test_iam_enforced.py
runs the handlers under moto's enforcement of the same policies).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.cfn import deployed
from tests.conftest import ARTIFACTS, MODELS
from tests.integration.test_iam_enforced import PUBLISH_PREFIX, resolve

DATE = "2026-11-25"
P = PUBLISH_PREFIX
M = f"{P}/iris"  # model iris's published location
# One key of every kind the pipeline writes, and one a hostile writer would want.
KEYS = {
    "dataset": (ARTIFACTS, f"artifacts/{DATE}/dataset-0123456789ab/dataset.csv"),
    "lineage": (ARTIFACTS, f"artifacts/{DATE}/dataset-0123456789ab/lineage.json"),
    "model": (ARTIFACTS, f"artifacts/{DATE}/model-0123456789ab/model.pkl"),
    "model card": (ARTIFACTS, f"artifacts/{DATE}/model-0123456789ab/metrics.json"),
    "published": (MODELS, f"{M}/{DATE}/published-0123456789ab/model.pkl"),
    "published card": (MODELS, f"{M}/{DATE}/published-0123456789ab/metrics.json"),
    "champion": (MODELS, f"{M}/champion.json"),
    "history": (MODELS, f"{M}/champion-history/20261125T030000.000000Z-published-0123456789ab-abcdef.json"),
    "history look-alike": (MODELS, f"{M}/champion-history/published-0123456789ab/model.pkl"),
    "model config": (MODELS, "model-configs/iris.json"),
    "sagemaker code": (ARTIFACTS, "sagemaker/code/sourcedir-0123456789ab.tar.gz"),
    "sagemaker output": (ARTIFACTS, "sagemaker/output/mlpipe-x-0/output/model.tar.gz"),
    "artifacts elsewhere": (ARTIFACTS, f"artifacts/{DATE}/other/model.pkl"),
    "publish elsewhere": (MODELS, f"{P}/{DATE}/model.pkl"),
}
MAY_WRITE = {
    "PlanRole": set(),
    "DownloadRole": {"dataset", "lineage"},
    "TrainRole": {"model", "model card"},
    "UploadRole": {"published", "published card"},
    "PromoteRole": {"champion", "history", "history look-alike"},
    "ReportRole": set(),
}
WRITES = ("s3:PutObject", "s3:AbortMultipartUpload")


@pytest.fixture(autouse=True)
def _region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def _pattern(text: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text))


def s3_statements(role: str, train_on: str) -> list[dict[str, Any]]:
    """The role's statements on S3, their intrinsics resolved."""
    found = []
    for policy in deployed(train_on)["Resources"][role]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(a.startswith("s3:") for a in actions):
                resource = resolve(statement["Resource"])
                found.append(
                    statement | {"Action": actions, "Resource": [resource] if isinstance(resource, str) else resource}
                )
    return found


def allowed(role: str, action: str, bucket: str, key: str, train_on: str = "lambda") -> bool:
    arn = f"arn:aws:s3:::{bucket}/{key}"
    effects = {
        statement["Effect"]
        for statement in s3_statements(role, train_on)
        if action in statement["Action"] and any(_pattern(r).fullmatch(arn) for r in statement["Resource"])
    }
    return "Allow" in effects and "Deny" not in effects


@pytest.mark.parametrize("role", sorted(MAY_WRITE))
def test_each_function_role_writes_only_its_own_targets(role: str) -> None:
    writable = {kind for kind, (bucket, key) in KEYS.items() if allowed(role, "s3:PutObject", bucket, key)}
    assert writable == MAY_WRITE[role], role
    # A multipart upload, only where a write is allowed (promote's small objects need none)
    aborts = {kind for kind, (bucket, key) in KEYS.items() if allowed(role, "s3:AbortMultipartUpload", bucket, key)}
    assert aborts <= writable, role


def test_the_sagemaker_jobs_write_only_models_and_their_output_and_the_plan_only_the_code() -> None:
    for role, expected in (
        ("SageMakerTrainingRole", {"model", "model card", "sagemaker output"}),
        ("PlanRole", {"sagemaker code"}),
    ):
        writable = {
            kind for kind, (bucket, key) in KEYS.items() if allowed(role, "s3:PutObject", bucket, key, "sagemaker")
        }
        assert writable == expected, role


def test_the_upload_role_is_explicitly_refused_the_champion() -> None:
    # Its Allow (<prefix>/*/published-*/*) would match a key under champion-history/: an explicit Deny keeps it out
    denials = [s for s in s3_statements("UploadRole", "lambda") if s["Effect"] == "Deny"]
    assert len(denials) == 1
    assert set(denials[0]["Action"]) == set(WRITES)
    assert sorted(denials[0]["Resource"]) == [
        f"arn:aws:s3:::{MODELS}/{P}/*/champion-history/*",
        f"arn:aws:s3:::{MODELS}/{P}/*/champion.json",
        f"arn:aws:s3:::{MODELS}/{P}/champion-history/*",
        f"arn:aws:s3:::{MODELS}/{P}/champion.json",
    ]


@pytest.mark.parametrize("role", ["DownloadRole", "TrainRole", "UploadRole", "PromoteRole", "PlanRole"])
def test_each_role_still_reads_what_it_checks(role: str) -> None:
    reads = {
        "PlanRole": set(KEYS) - {"sagemaker code", "sagemaker output"},  # the plan reads every target
        "DownloadRole": {"dataset", "lineage"},
        "TrainRole": {"dataset", "lineage", "model", "model card", "champion"},
        "UploadRole": {"model", "model card"} | {k for k, (b, _) in KEYS.items() if b == MODELS} - {"model config"},
        "PromoteRole": {k for k, (bucket, _) in KEYS.items() if bucket == MODELS} - {"model config"},
    }[role]
    readable = {kind for kind, (bucket, key) in KEYS.items() if allowed(role, "s3:GetObject", bucket, key)}
    assert readable == reads, json.dumps(sorted(readable ^ reads))
