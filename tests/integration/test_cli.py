"""`pipeline run` as a user runs it: a subprocess, its exit status and its --json summary."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from mlpipe.status import LISTS
from mlpipe.steps import OUTPUTS, STEPS, TASKS
from tests.cli import PIPELINE
from tests.cli import pipeline as command
from tests.conftest import REPO


def pipeline(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return command("run", *args, cwd=cwd, env=env)


def test_json_summary_then_everything_present_on_the_second_run(tmp_path: Path) -> None:
    first = pipeline("--json", "--run-date", "2026-11-25", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["status"] == "SUCCEEDED"
    assert summary["error"] is None
    assert {k: v["state"] for k, v in summary["tasks"].items()} == dict.fromkeys(TASKS, "ran")
    published = summary["tasks"]["upload"]["target"]
    assert published.startswith((tmp_path / ".pipeline/published/iris/2026-11-25/published-").as_uri())
    assert published.endswith("/model.pkl")
    second = pipeline("--json", "--run-date", "2026-11-25", cwd=tmp_path)
    assert second.returncode == 0
    assert {v["state"] for v in json.loads(second.stdout)["tasks"].values()} == {"present"}


def test_text_mode_prints_each_state_and_the_summary(tmp_path: Path) -> None:
    result = pipeline(cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for state in (step.states[0] for step in STEPS):  # on Lambda: each step's first state
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
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="local-models", Prefix="iris/iris/2026-11-25/")["Contents"]]
    assert [key.rsplit("/", 1)[1] for key in keys] == ["metrics.json", "model.pkl"]
    assert keys[0].startswith("iris/iris/2026-11-25/published-")
    assert s3.head_object(Bucket="local-models", Key="iris/iris/champion.json")["ContentLength"] > 0


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
    assert summary["tasks"]["download"]["state"] == "not_run"
    assert summary["tasks"]["download"]["target"].startswith("s3://no-such-artifacts/runs/2026-02-02/dataset-")
    assert summary["tasks"]["download"]["target"].endswith("/dataset.csv")
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


def test_max_source_bytes_takes_up_to_5_gib_and_names_the_limit_above(tmp_path: Path) -> None:
    # 5 GiB is taken (the run then stops at the plan, on a bad --cv-folds, before anything is fetched)
    accepted = pipeline("--json", "--max-source-bytes", str(5 * 1024**3), "--cv-folds", "1", cwd=tmp_path)
    assert accepted.returncode == 1, accepted.stderr
    assert "cv_folds must be" in json.loads(accepted.stdout)["error"]["message"]
    result = pipeline("--max-source-bytes", str(5 * 1024**3 + 1), cwd=tmp_path)
    assert result.returncode == 2
    assert "--max-source-bytes must be an integer of at least 1 and at most 5368709120 (5 GiB)" in result.stderr
    shown = pipeline("--help", cwd=tmp_path)
    assert "at most 5 GiB" in " ".join(shown.stdout.split())


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
        "artifacts/2026-02-02/dataset.csv",
        "artifacts/2026-02-02/lineage.json",
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


def test_dataset_flags_and_another_estimator_make_the_run(tmp_path: Path, http_server: Any) -> None:
    from tests.datasets import cases  # noqa: PLC0415 - imports pandas and scikit-learn: lazy

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
    (card_path,) = (tmp_path / ".pipeline/published/iris/2026-11-25").glob("published-*/metrics.json")
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
    return {LISTS[output.family]: {s["tasks"][task]["target"] for s in summaries} for task, output in OUTPUTS.items()}


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
    assert {kind: {e["uri"] for e in first[kind]} for kind in LISTS.values()} == expect_status(runs[:2])
    assert {e["state"] for run in found["runs"] for kind in LISTS.values() for e in run[kind]} == {"present"}
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


def test_champion_promote_and_rollback_commands(tmp_path: Path) -> None:
    # Given two dates run: the newer one is champion
    runs = [
        json.loads(pipeline("--json", "--run-date", day, cwd=tmp_path).stdout) for day in ("2026-11-24", "2026-11-25")
    ]
    champion = command("champion", "--json", cwd=tmp_path)
    assert champion.returncode == 0, champion.stderr
    shown = json.loads(champion.stdout)
    assert shown["champion"]["model_uri"] == runs[1]["tasks"]["upload"]["target"]
    # When it is rolled back, the older one is champion again
    assert command("rollback", cwd=tmp_path).returncode == 0
    assert json.loads(command("champion", "--json", cwd=tmp_path).stdout)["champion"]["run_date"] == "2026-11-24"
    # When the newer one is promoted by hand, it is champion again, and the history has all four changes
    promoted = command("promote", "--run-date", "2026-11-25", cwd=tmp_path)
    assert promoted.returncode == 0, promoted.stderr
    final = json.loads(command("champion", "--json", cwd=tmp_path).stdout)
    assert final["champion"]["model_uri"] == runs[1]["tasks"]["upload"]["target"]
    assert [h["action"] for h in final["history"]] == ["promote", "promote", "rollback", "manual"]
    text = command("champion", cwd=tmp_path).stdout
    assert "history, newest first:" in text
    # A date with no published model is refused, naming what there is
    missing = command("promote", "--run-date", "2026-01-01", cwd=tmp_path)
    assert missing.returncode == 1
    assert "0 published models match on 2026-01-01" in missing.stderr
