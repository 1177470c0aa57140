"""Fixtures for running the real state machine (statemachine/pipeline.asl.json) on moto."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mlpipe.config import Settings, resolve_run
from pipeline_local.runner import LocalPipeline
from tests.conftest import ARTIFACTS, MODELS

DATE = "2026-11-25"
# The test server listens on a new port each time; the source enters the identities under this name
# instead, so the targets of a default run input are known in advance.
SOURCE_ID = "test:iris"


def run_keys(**overrides: Any) -> dict[str, str]:
    """The S3 keys of the targets the plan derives for ``run_input(**overrides)`` (same settings as the plan)."""
    execution_input = {
        "run_date": DATE,
        "source_url": "https://example.org/iris.data",
        "source_id": SOURCE_ID,
        "artifact_root": f"s3://{ARTIFACTS}/runs",
        "publish_uri": f"s3://{MODELS}/iris",
    } | overrides
    run = resolve_run(execution_input, Settings.from_env({}))

    def key(uri: str) -> str:
        return uri.split("/", 3)[3]

    return {
        "dataset": key(run.dataset_uri),
        "lineage": key(run.dataset_uri).rsplit("/", 1)[0] + "/lineage.json",
        "profile": key(run.dataset_uri).rsplit("/", 1)[0] + "/profile.json",
        "model": key(run.model_uri),
        "metrics": key(run.model_uri).rsplit("/", 1)[0] + "/metrics.json",
        "published": key(run.published_uri),
        "published_metrics": key(run.published_uri).rsplit("/", 1)[0] + "/metrics.json",
    }


_KEYS = run_keys()
DATASET_KEY = _KEYS["dataset"]
LINEAGE_KEY = _KEYS["lineage"]
PROFILE_KEY = _KEYS["profile"]  # the data's profile (mlpipe.contract), beside the dataset
MODEL_KEY = _KEYS["model"]
METRICS_KEY = _KEYS["metrics"]
PUBLISHED_KEY = _KEYS["published"]
PUBLISHED_METRICS_KEY = _KEYS["published_metrics"]


@pytest.fixture
def pipeline(aws: Any) -> LocalPipeline:
    """The state machine on moto with the real handlers; Retry intervals scaled to zero."""
    return LocalPipeline(retry_delay_scale=0.0)


@pytest.fixture
def run_input(http_server: Any) -> Callable[..., dict[str, Any]]:
    """An execution input for DATE on the test buckets, with overrides."""

    def make(**overrides: Any) -> dict[str, Any]:
        return {
            "run_date": DATE,
            "source_url": http_server.url(),
            "source_id": SOURCE_ID,
            "artifact_root": f"s3://{ARTIFACTS}/runs",
            "publish_uri": f"s3://{MODELS}/iris",
        } | overrides

    return make


def states(summary: dict[str, Any]) -> dict[str, str]:
    """``{task: state}`` of a summary."""
    return {name: task["state"] for name, task in summary["tasks"].items()}
