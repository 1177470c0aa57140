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

from tests.conftest import REPO

PIPELINE = str(Path(sys.executable).with_name("pipeline"))


def pipeline(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return command("run", *args, cwd=cwd, env=env)


def command(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PIPELINE, *args],
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
    assert "end    Plan the run  (start at: download; pending, will run: download, train, upload)" in result.stderr


def test_a_failed_run_exits_non_zero_with_the_error_in_the_json(tmp_path: Path) -> None:
    result = pipeline("--json", "--hyperparameters", '{"C": -1}', cwd=tmp_path)
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["status"] == "FAILED"
    assert summary["error"]["type"] == "InvalidHyperparametersError"
    assert "C must be a number > 0" in summary["error"]["message"]
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


UNREACHABLE = "http://127.0.0.1:9/iris.data"  # the discard port: nothing listens, the connection is refused


def test_an_unreachable_source_prints_each_retry_and_leaves_nothing(tmp_path: Path) -> None:
    # Given a source nobody answers, and the state machine's Retry intervals scaled to nothing
    result = pipeline(
        "--source-url", UNREACHABLE, "--run-date", "2026-02-02", cwd=tmp_path, env={"MLPIPE_RETRY_DELAY_SCALE": "0"}
    )
    assert result.returncode == 1
    # Then each of the state machine's three retries is announced, with the attempt and the error
    for attempt in (2, 3, 4):
        assert f"retrying Download dataset in 0 s (attempt {attempt} of 4): SourceUnavailableError" in result.stderr
    # and each failure is one readable line: no JSON log record, no traceback
    assert result.stderr.count("download failed: SourceUnavailableError: source 'http://127.0.0.1:9") == 4
    assert '{"level"' not in result.stderr
    assert "Traceback" not in result.stderr
    assert "FAILED in download: SourceUnavailableError" in result.stdout
    # and the failed download left no empty run directory behind
    assert not (tmp_path / ".pipeline").exists()


def test_verbose_keeps_the_json_logs_with_the_traceback(tmp_path: Path) -> None:
    result = pipeline("--source-url", UNREACHABLE, "--verbose", cwd=tmp_path, env={"MLPIPE_RETRY_DELAY_SCALE": "0"})
    assert result.returncode == 1
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith('{"level"')]
    failures = [r for r in records if r["message"] == "task failed"]
    assert len(failures) == 4
    assert "Traceback" in failures[0]["exception"]


def test_a_failed_plan_keeps_the_run_date_and_targets(tmp_path: Path, s3_server: str) -> None:
    # Given S3 roots whose buckets do not exist
    result = pipeline(
        "--json",
        "--run-date",
        "2026-02-02",
        "--artifact-root",
        "s3://no-such-artifacts/runs",
        "--publish-uri",
        "s3://no-such-models/iris",
        cwd=tmp_path,
        env={"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"},
    )
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["error"]["task"] == "plan"
    assert summary["error"]["type"] == "StorageError"
    assert summary["run_date"] == "2026-02-02"
    assert summary["tasks"]["download"] == {
        "state": "not_run",
        "target": "s3://no-such-artifacts/runs/2026-02-02/dataset.csv",
    }
    text = pipeline(
        "--run-date",
        "2026-02-02",
        "--artifact-root",
        "s3://no-such-artifacts/runs",
        cwd=tmp_path,
        env={"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "l"},
    )
    assert "Summary of run 2026-02-02" in text.stdout


@pytest.mark.parametrize("value", ["2026-2-2", "2026-02-30", "tomorrow"])
def test_a_bad_run_date_is_a_usage_error_naming_the_format(tmp_path: Path, value: str) -> None:
    result = pipeline("--run-date", value, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: pipeline run ")
    assert "YYYY-MM-DD" in result.stderr
    assert "must be a string" not in result.stderr
    assert not (tmp_path / ".pipeline").exists()


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (["run", "--run-dat", "2026-01-01"], "usage: pipeline run "),
        (["run", "--bogus"], "usage: pipeline run "),
        (["invoke", "plan", "events/plan.json", "--offlin"], "usage: pipeline invoke "),
        (["--vers", "run"], "usage: pipeline [-h]"),
    ],
)
def test_abbreviations_and_unknown_flags_are_refused_with_the_subcommands_usage(
    tmp_path: Path, args: list[str], usage: str
) -> None:
    result = command(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(usage)
    assert "unrecognized arguments" in result.stderr


def test_version_and_help_read_as_plain_text(tmp_path: Path) -> None:
    version = command("--version", cwd=tmp_path)
    assert version.returncode == 0
    assert version.stdout.startswith("pipeline 0.")
    for args in ([], ["run"], ["invoke"]):
        shown = command(*args, "--help", cwd=tmp_path)
        assert shown.returncode == 0
        assert "``" not in shown.stdout
        description = shown.stdout.split("\n\n")[1]  # usage, blank line, the description
        assert not description.startswith(("positional", "options")), f"no description for {args}"


def test_max_source_bytes_is_an_input_field(tmp_path: Path) -> None:
    result = pipeline("--json", "--max-source-bytes", "100", cwd=tmp_path)
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["error"]["type"] == "SourceTooLargeError"
    assert not (tmp_path / ".pipeline").exists()


def test_invoke_against_a_local_endpoint_may_download_from_loopback(
    tmp_path: Path, s3_server: str, http_server: Any
) -> None:
    # Given a local S3 server with the bucket, and a source on 127.0.0.1
    s3: Any = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    s3.create_bucket(Bucket="invoke-artifacts")
    event = tmp_path / "download.json"
    event.write_text(
        json.dumps(
            {
                "run_date": "2026-02-02",
                "source_url": http_server.url(),
                "dataset_uri": "s3://invoke-artifacts/artifacts/2026-02-02/dataset.csv",
            }
        )
    )
    env = {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
    env_without_flag = {k: v for k, v in os.environ.items() if k != "MLPIPE_ALLOW_LOOPBACK_SOURCES"} | env
    # When it is invoked without --offline
    result = subprocess.run(
        [PIPELINE, "invoke", "download", str(event)],
        cwd=tmp_path,
        env=env_without_flag,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then the download ran against the local server
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["state"] == "ran"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="invoke-artifacts")["Contents"]] == [
        "artifacts/2026-02-02/dataset.csv"
    ]


def test_invoke_plan_says_what_pending_means(tmp_path: Path) -> None:
    result = command("invoke", "plan", str(REPO / "events" / "execution.json"), "--offline", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tasks"]["download"]["state"] == "pending"
    assert "download  pending (will run)" in result.stderr


def test_a_download_that_fails_while_streaming_leaves_no_directory(tmp_path: Path, http_server: Any) -> None:
    # Given a source that answers, but not with the dataset (the target is open when validation fails)
    (http_server.root / "bad.data").write_text("<html><body>maintenance</body></html>\n")
    result = pipeline("--json", "--source-url", http_server.url("/bad.data"), "--run-date", "2026-02-02", cwd=tmp_path)
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["type"] == "InvalidDatasetError"
    # Then not even the run's directory is left under the artifact root
    assert not (tmp_path / ".pipeline").exists(), sorted(str(p) for p in (tmp_path / ".pipeline").rglob("*"))
