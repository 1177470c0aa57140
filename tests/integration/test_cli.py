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
    published = summary["tasks"]["upload"]["target"]
    assert published.startswith((tmp_path / ".pipeline/published/2026-11-25/published-").as_uri())
    assert published.endswith("/model.pkl")
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
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="local-models", Prefix="iris/2026-11-25/")["Contents"]]
    assert [key.rsplit("/", 1)[1] for key in keys] == ["metrics.json", "model.pkl"]
    assert keys[0].startswith("iris/2026-11-25/published-")
    assert s3.head_object(Bucket="local-models", Key="iris/champion.json")["ContentLength"] > 0


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
    (card_path,) = (tmp_path / ".pipeline/published/2026-11-25").glob("published-*/metrics.json")
    card = json.loads(card_path.read_text())
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


def status(*args: str, cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = subprocess.run(
        [PIPELINE, "status", "--json", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def expect_status(summaries: list[dict[str, Any]]) -> dict[str, set[str]]:
    """The target URIs that runs reported, by kind."""
    return {
        kind: {s["tasks"][task]["target"] for s in summaries}
        for kind, task in (("datasets", "download"), ("models", "train"), ("published", "upload"))
    }


@pytest.mark.parametrize("store", ["local", "s3"])
def test_status_lists_what_the_runs_made_on_both_stores(store: str, tmp_path: Path, s3_server: str) -> None:
    env: dict[str, str] = {}
    roots: list[str] = []
    if store == "s3":
        env = {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
        s3: Any = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
        s3.create_bucket(Bucket="status-artifacts")
        s3.create_bucket(Bucket="status-models")
        roots = ["--artifact-root", "s3://status-artifacts/runs", "--publish-uri", "s3://status-models/iris"]
    runs = []
    for extra in ([], ["--hyperparameters", '{"C": 10}'], ["--run-date", "2026-11-26"]):
        date = [] if extra[:1] == ["--run-date"] else ["--run-date", "2026-11-25"]
        result = pipeline("--json", *date, *extra, *roots, cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr
        runs.append(json.loads(result.stdout))
    found = status(*roots, cwd=tmp_path, env=env)
    assert [run["run_date"] for run in found["runs"]] == ["2026-11-25", "2026-11-26"]
    first = found["runs"][0]
    assert {kind: {e["uri"] for e in first[kind]} for kind in ("datasets", "models", "published")} == expect_status(
        runs[:2]
    )
    assert {e["state"] for run in found["runs"] for kind in ("datasets", "models", "published") for e in run[kind]} == {
        "present"
    }
    accuracies = {e["hyperparameters"].get("C"): e["cv_accuracy"] for e in first["models"]}
    assert set(accuracies) == {None, 10}
    assert all(0.9 < value <= 1 for value in accuracies.values())
    newest = [e["uri"] for e in first["published"] if e["newest"]]
    assert newest == [runs[1]["tasks"]["upload"]["target"]]
    # One date, and a model left without its card, is incomplete
    only = status("--run-date", "2026-11-26", *roots, cwd=tmp_path, env=env)
    assert [run["run_date"] for run in only["runs"]] == ["2026-11-26"]
    model = runs[2]["tasks"]["train"]["target"]
    if store == "s3":
        bucket, path = model[5:].split("/", 1)
        s3.delete_object(Bucket=bucket, Key=path.replace("model.pkl", "metrics.json"))
    else:
        Path(model.removeprefix("file://")).with_name("metrics.json").unlink()
    models = status("--run-date", "2026-11-26", *roots, cwd=tmp_path, env=env)["runs"][0]["models"]
    assert [(e["uri"], e["state"]) for e in models] == [(model, "incomplete")]
