"""Fixtures for running the real state machine (statemachine/pipeline.asl.json) on moto."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pipeline_local.runner import LocalPipeline
from tests.conftest import ARTIFACTS, MODELS

DATE = "2026-11-25"
DATASET_KEY = f"runs/{DATE}/dataset.csv"
MODEL_KEY = f"runs/{DATE}/model.pkl"
METRICS_KEY = f"runs/{DATE}/metrics.json"
PUBLISHED_KEY = f"iris/{DATE}/model.pkl"


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
            "artifact_root": f"s3://{ARTIFACTS}/runs",
            "publish_uri": f"s3://{MODELS}/iris",
        } | overrides

    return make


def states(summary: dict[str, Any]) -> dict[str, str]:
    """``{task: state}`` of a summary."""
    return {name: task["state"] for name, task in summary["tasks"].items()}
