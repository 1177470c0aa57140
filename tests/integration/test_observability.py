"""Structured logs carry the execution id in every function; metrics come out as CloudWatch EMF."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider import cold_start

from mlpipe.observability import logger
from mlpipe.steps import FUNCTIONS
from pipeline_local.runner import LocalPipeline


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


@pytest.fixture
def info_logs() -> Iterator[None]:
    level = logger.log_level
    logger.setLevel("INFO")
    yield
    logger.setLevel(level)


def test_every_function_logs_json_with_the_execution_id(
    aws: Any,
    pipeline: LocalPipeline,
    run_input: Callable[..., dict[str, Any]],
    info_logs: None,
    capfd: pytest.CaptureFixture[str],
) -> None:
    with pipeline.lambdas.active():
        arn = pipeline.start(run_input())
        pipeline.wait(arn)
    records = [r for r in json_lines(capfd.readouterr().err) if r.get("service") == "mlpipe"]
    functions = {r.get("function_name") for r in records}
    assert functions == set(FUNCTIONS)
    assert {r.get("correlation_id") for r in records} == {arn}
    finished = {r["task"]: r for r in records if r["message"] == "task finished"}
    assert finished["download"]["rows"] == 150
    assert (finished["train"]["state"], finished["train"]["problem"]) == ("ran", "classification")


def test_task_numbers_and_cold_starts_are_emitted_as_emf(
    aws: Any,
    http_server: Any,
    invoke: Callable[[str, dict[str, Any]], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setattr(cold_start, "is_cold_start", True)
    capfd.readouterr()
    invoke(
        "download",
        {
            "run_date": "2026-11-25",
            "source_url": http_server.url(),
            "dataset_uri": "s3://mlpipe-test-artifacts/d/dataset.csv",
        },
    )
    blobs = json_lines(capfd.readouterr().out)
    values = {
        metric["Name"]: blob[metric["Name"]]
        for blob in blobs
        for directive in blob["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }
    assert values["DatasetRows"] == [150.0]
    assert values["DatasetBytes"] == [4551.0]
    assert values["ColdStart"] == [1.0]
    task_blob = next(blob for blob in blobs if "DatasetRows" in blob)
    assert task_blob["task"] == "download"
    assert task_blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MLPipe"


def test_the_report_counts_each_task_outcome(
    invoke: Callable[[str, dict[str, Any]], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    state = {
        "run": {"run_date": "2026-11-25"},
        "tasks": {
            "download": {"state": "present", "target": "d"},
            "train": {"state": "ran", "target": "m"},
            "upload": {"state": "ran", "target": "p"},
        },
    }
    capfd.readouterr()
    invoke("report", state)
    blobs = json_lines(capfd.readouterr().out)
    outcomes = {(b["task"], b["outcome"]) for b in blobs if "TaskOutcomes" in b}
    assert outcomes == {("download", "present"), ("train", "ran"), ("upload", "ran")}
    assert any("RunsSucceeded" in b for b in blobs)
