"""`pipeline run` as a user runs it: a subprocess, its exit status and its --json summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

PIPELINE = str(Path(sys.executable).with_name("pipeline"))


def pipeline(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PIPELINE, "run", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_json_summary_then_everything_present_on_the_second_run(tmp_path: Path) -> None:
    first = pipeline("--json", "--run-date", "2026-11-25", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["status"] == "SUCCEEDED"
    assert summary["error"] is None
    assert {k: v["state"] for k, v in summary["tasks"].items()} == {"download": "ran", "train": "ran", "upload": "ran"}
    assert summary["tasks"]["upload"]["target"] == (tmp_path / ".pipeline/published/2026-11-25/model.pkl").as_uri()
    second = pipeline("--json", "--run-date", "2026-11-25", cwd=tmp_path)
    assert second.returncode == 0
    assert {v["state"] for v in json.loads(second.stdout)["tasks"].values()} == {"present"}


def test_text_mode_prints_each_state_and_the_summary(tmp_path: Path) -> None:
    result = pipeline(cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for state in ("Plan the run", "Download dataset", "Train model", "Publish model", "Report the run"):
        assert f"start  {state}" in result.stderr
        assert f"end    {state}" in result.stderr
    assert "SUCCEEDED: ran download, train, upload" in result.stdout


def test_a_failed_run_exits_non_zero_with_the_error_in_the_json(tmp_path: Path) -> None:
    result = pipeline("--json", "--hyperparameters", '{"C": -1}', cwd=tmp_path)
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["status"] == "FAILED"
    assert summary["error"]["type"] == "InvalidHyperparametersError"
    assert "C must be a float in (0, inf], got -1" in summary["error"]["message"]
    assert not (tmp_path / ".pipeline").exists() or not any((tmp_path / ".pipeline").rglob("*.pkl"))


@pytest.fixture
def s3_server() -> Iterator[str]:
    """A local S3-compatible server on 127.0.0.1 (moto's server mode)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_s3_roots_go_to_the_server_named_by_aws_endpoint_url(tmp_path: Path, s3_server: str) -> None:
    s3: Any = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    s3.create_bucket(Bucket="local-artifacts")
    s3.create_bucket(Bucket="local-models")
    result = pipeline(
        "--json",
        "--run-date",
        "2026-11-25",
        "--artifact-root",
        "s3://local-artifacts/runs",
        "--publish-uri",
        "s3://local-models/iris",
        cwd=tmp_path,
        env={"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"},
    )
    assert result.returncode == 0, result.stderr + result.stdout
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="local-models")["Contents"]]
    assert keys == ["iris/2026-11-25/metrics.json", "iris/2026-11-25/model.pkl"]


def test_dataset_flags_and_another_estimator_make_the_run(tmp_path: Path, http_server: Any) -> None:
    from tests.datasets import cases

    case = cases()["iris_tab_label_inside"]
    (http_server.root / "iris.tsv").write_bytes(case.body)
    result = pipeline(
        "--json",
        "--run-date",
        "2026-11-25",
        "--source-url",
        http_server.url("/iris.tsv"),
        "--delimiter",
        "tab",
        "--label-column",
        "species",
        "--drop-columns",
        "sepal width (cm)",
        "--estimator",
        "random_forest",
        "--hyperparameters",
        '{"n_estimators": 20}',
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    card = json.loads((tmp_path / ".pipeline/published/2026-11-25/metrics.json").read_text())
    assert card["estimator"]["class"] == "sklearn.ensemble.RandomForestClassifier"
    assert card["estimator"]["hyperparameters"]["n_estimators"] == 20
    assert card["input"]["columns"] == ["sepal length (cm)", "petal length (cm)", "petal width (cm)"]
    assert card["dataset"]["description"]["delimiter"] == "\t"
    assert sorted(card["classes"]) == ["setosa", "versicolor", "virginica"]


def test_a_bad_dataset_flag_fails_in_the_plan_naming_the_field(tmp_path: Path) -> None:
    result = pipeline("--json", "--label-column", "x", "--feature-columns", "x,y", cwd=tmp_path)
    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert (error["task"], error["type"]) == ("plan", "InvalidRequestError")
    assert "label column 'x' is also in feature_columns" in error["message"]
