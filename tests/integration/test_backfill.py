"""The backfill state machine (statemachine/backfill.asl.json) on moto, starting real child executions of the pipeline.

Outcomes are judged by the summaries, and targets are read from them (or from the plan), never
spelled out here: the plan decides where a date's outputs go.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from mlpipe.steps import TASKS
from pipeline_local.cli import SAMPLE_SOURCE_ID
from pipeline_local.lambdas import MOTO_SERIES, REPO_ROOT
from pipeline_local.runner import LocalBackfill
from tests.conftest import ARTIFACTS, MODELS, s3_versions
from tests.integration.conftest import states

Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]
DATES = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]


@pytest.fixture
def backfill(aws: Any) -> LocalBackfill:
    """Both state machines on moto with the real handlers; Retry intervals scaled to zero."""
    return LocalBackfill(retry_delay_scale=0.0)


@pytest.fixture
def options(http_server: Any) -> dict[str, Any]:
    """The pipeline options every date of a backfill shares: the test server's Iris file, the test buckets."""
    return {
        "source_url": http_server.url(),
        "artifact_root": f"s3://{ARTIFACTS}/runs",
        "publish_uri": f"s3://{MODELS}/iris",
    }


class InFlight:
    """Counts child executions in flight: from the end of a child's plan step to the end of its report step.

    Each child waits after its plan (up to ``hold`` seconds) until ``expected`` children are in
    flight, so that the children overlap as much as the Map lets them: the maximum is then exactly
    the Map's concurrency, and more than it if the Map started too many.
    """

    def __init__(self, expected: int, hold: float = 2.0) -> None:
        self.expected = expected
        self.hold = hold
        self.now = 0
        self.most = 0
        self.children = 0
        self.changed = threading.Condition()

    def __call__(self, name: str, event: Any, result: Any) -> None:
        child_plan = name == "plan" and isinstance(event, dict) and "input" in event
        child_report = name == "report" and isinstance(event, dict) and "backfill_results" not in event
        with self.changed:
            if child_plan:
                self.children += 1
                self.now += 1
                self.most = max(self.most, self.now)
                self.changed.notify_all()
                self.changed.wait_for(lambda: self.now >= self.expected, timeout=self.hold)
            elif child_report:
                self.now -= 1
                self.changed.notify_all()


@pytest.fixture
def in_flight(backfill: LocalBackfill) -> Iterator[Callable[[int], InFlight]]:
    def watch(expected: int) -> InFlight:
        counter = InFlight(expected)
        backfill.lambdas.on_invoke = counter
        return counter

    yield watch
    backfill.lambdas.on_invoke = None


def _targets(summary: dict[str, Any]) -> dict[str, str]:
    return {name: task["target"] for name, task in summary["tasks"].items()}


def _s3(uri: str) -> tuple[str, str]:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return bucket, key


def test_backfill_of_five_dates_two_complete_one_failing(
    aws: Any, backfill: LocalBackfill, options: dict[str, Any], invoke: Invoke, in_flight: Callable[[int], InFlight]
) -> None:
    # Given two dates complete beforehand
    before = {date: backfill.pipeline.run({**options, "run_date": date}) for date in DATES[:2]}
    assert all(summary["status"] == "SUCCEEDED" for summary in before.values())
    # and a date whose stored dataset is corrupt (where the plan says the dataset goes): it fails in train
    planned = invoke("plan", {**options, "run_date": DATES[3]})
    bucket, key = _s3(planned["tasks"]["download"]["target"])
    aws.put_object(Bucket=bucket, Key=key, Body=b"<html><body>not a dataset</body></html>\n")
    counter = in_flight(2)  # the template's default concurrency, through the DefinitionSubstitution

    # When the five dates are backfilled
    summary = backfill.run({"from": DATES[0], "to": DATES[-1], "input": options})

    # Then every date has its summary, in order, and the totals say what happened
    assert summary["status"] == "FAILED"
    assert summary["totals"] == {"ran": 2, "present": 2, "failed": 1}
    runs = {run["run_date"]: run for run in summary["runs"]}
    assert list(runs) == DATES
    for date in DATES[:2]:
        assert states(runs[date]) == dict.fromkeys(TASKS, "present")
        assert _targets(runs[date]) == _targets(before[date])
    for date in (DATES[2], DATES[4]):
        assert runs[date]["status"] == "SUCCEEDED"
        assert states(runs[date]) == dict.fromkeys(TASKS, "ran")
    failed = runs[DATES[3]]
    assert failed["status"] == "FAILED"
    assert states(failed) == {"download": "present", "train": "failed", "upload": "not_run"}
    assert (failed["error"]["task"], failed["error"]["type"]) == ("train", "InvalidDatasetError")
    # and the other dates' outputs are intact: published once, never overwritten
    for date in (*DATES[:3], DATES[4]):
        assert s3_versions(aws, *_s3(runs[date]["tasks"]["upload"]["target"])) == 1
    assert s3_versions(aws, *_s3(failed["tasks"]["upload"]["target"])) == 0
    # and the backfill execution failed with BackfillFailed, its Cause the same summary
    execution = backfill.sfn.list_executions(stateMachineArn=backfill.state_machine_arn)["executions"][0]
    described = backfill.sfn.describe_execution(executionArn=execution["executionArn"])
    assert described["status"] == "FAILED"
    assert described["error"] == "BackfillFailed"
    assert json.loads(described["cause"]) == summary
    # and every child execution is linked to it, and got the shared input with its date
    children = backfill.sfn.list_executions(stateMachineArn=backfill.pipeline.state_machine_arn)["executions"]
    inputs = [json.loads(backfill.sfn.describe_execution(executionArn=c["executionArn"])["input"]) for c in children]
    backfilled = [i for i in inputs if "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID" in i]
    assert sorted(i["run_date"] for i in backfilled) == DATES
    for child_input in backfilled:
        assert child_input == options | {
            "run_date": child_input["run_date"],
            "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": execution["executionArn"],
        }
    # and at most two dates ran at once, and two did
    assert counter.children == 5
    assert counter.most == 2


def test_a_daily_source_whose_file_for_one_date_is_missing_fails_that_date_only(
    aws: Any, backfill: LocalBackfill, http_server: Any
) -> None:
    # Given a source published as one file per day ({run_date} in its URL), two dates complete
    # beforehand, and no file for the fourth date
    for date in DATES:
        if date != DATES[3]:
            (http_server.root / f"iris-{date}.csv").write_bytes((http_server.root / "iris.data").read_bytes())
    options = {
        "source_url": http_server.url("/iris-{run_date}.csv"),
        "artifact_root": f"s3://{ARTIFACTS}/daily",
        "publish_uri": f"s3://{MODELS}/daily",
    }
    for date in DATES[:2]:
        assert backfill.pipeline.run({**options, "run_date": date})["status"] == "SUCCEEDED"
    # When the five dates are backfilled
    summary = backfill.run({"from": DATES[0], "to": DATES[-1], "input": options})
    # Then 2 are present, 2 ran, and the date whose source fails is the one failure
    assert summary["totals"] == {"ran": 2, "present": 2, "failed": 1}
    failed = {run["run_date"]: run for run in summary["runs"]}[DATES[3]]
    # (the plan's HEAD, for the source's version, finds it missing: the download never starts)
    assert (failed["error"]["task"], failed["error"]["type"]) == ("plan", "SourceNotReadyError")
    assert f"iris-{DATES[3]}.csv" in failed["error"]["message"]
    # and each date with a file fetched its own file, once
    fetched = sorted(p for p in http_server.requests if p.startswith("/iris-"))
    assert fetched == sorted(f"/iris-{d}.csv" for d in DATES if d != DATES[3])


def test_max_concurrency_of_the_input_is_honoured(
    backfill: LocalBackfill, options: dict[str, Any], in_flight: Callable[[int], InFlight]
) -> None:
    counter = in_flight(3)
    summary = backfill.run({"from": DATES[0], "to": DATES[3], "max_concurrency": 3, "input": options})
    assert summary["status"] == "SUCCEEDED"
    assert summary["totals"] == {"ran": 4, "present": 0, "failed": 0}
    assert counter.children == 4
    assert counter.most == 3


def test_a_complete_range_costs_one_plan_step_per_date(backfill: LocalBackfill, options: dict[str, Any]) -> None:
    first = backfill.run({"from": DATES[0], "to": DATES[1], "input": options})
    assert first["totals"] == {"ran": 2, "present": 0, "failed": 0}
    calls_before = len(backfill.lambdas.invocations)
    again = backfill.run({"from": DATES[0], "to": DATES[1], "input": options})
    assert again["status"] == "SUCCEEDED"
    assert again["totals"] == {"ran": 0, "present": 2, "failed": 0}
    calls = [name for name, _ in backfill.lambdas.invocations[calls_before:]]
    # the backfill's expand and report steps, and per date one plan and one report step
    assert sorted(calls) == sorted(["plan", "report"] + ["plan", "report"] * 2)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"from": "2026-11-05", "to": "2026-11-01"}, "is before its from"),
        ({"from": "2026-01-01", "to": "2027-01-02"}, "367 dates; at most 366"),
        ({"from": "2026-11-31", "to": "2026-12-01"}, "not a valid date"),
        ({"from": "2026-11-01", "to": "2026-11-02", "input": {"run_date": "2026-11-01"}}, "may not set run_date"),
    ],
)
def test_a_bad_request_fails_before_any_date_starts(
    backfill: LocalBackfill, options: dict[str, Any], request_: dict[str, Any], message: str
) -> None:
    summary = backfill.run({"input": options} | request_)
    assert summary["status"] == "FAILED"
    assert summary["runs"] == []
    assert summary["error"]["type"] == "InvalidRequestError"
    assert message in summary["error"]["message"]
    assert backfill.sfn.list_executions(stateMachineArn=backfill.pipeline.state_machine_arn)["executions"] == []
    assert [name for name, _ in backfill.lambdas.invocations] == ["plan"]


def test_the_local_backfill_substitutes_every_placeholder(backfill: LocalBackfill) -> None:
    definition = backfill.sfn.describe_state_machine(stateMachineArn=backfill.state_machine_arn)["definition"]
    assert "${" not in definition
    assert backfill.pipeline.state_machine_arn in definition


def _backfill_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("pipeline")), "backfill", *args],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_cli_backfill_exits_non_zero_when_a_date_failed(tmp_path: Path, invoke: Invoke) -> None:
    roots = ["--artifact-root", str(tmp_path / "artifacts"), "--publish-uri", str(tmp_path / "published")]
    # Given two dates complete beforehand, by a first backfill that succeeds
    first = _backfill_cli("--from", DATES[0], "--to", DATES[1], "--json", *roots, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["totals"] == {"ran": 2, "present": 0, "failed": 0}
    # and a date whose stored dataset is corrupt, where the plan puts it
    planned = invoke(
        "plan",
        {
            "run_date": DATES[3],
            "source_url": "http://127.0.0.1:9/iris.data",
            "source_id": SAMPLE_SOURCE_ID,  # the name the CLI gives its bundled sample, so the same identities
            "artifact_root": str(tmp_path / "artifacts"),
            "publish_uri": str(tmp_path / "published"),
        },
    )
    dataset = Path(unquote(urlparse(planned["tasks"]["download"]["target"]).path))
    dataset.parent.mkdir(parents=True, exist_ok=True)
    dataset.write_text("<html><body>not a dataset</body></html>\n")

    # When the five dates are backfilled, two at a time
    result = _backfill_cli(
        "--from", DATES[0], "--to", DATES[-1], "--max-concurrency", "2", "--json", *roots, cwd=tmp_path
    )

    # Then it exits 1, and the JSON has every date's summary (as pipeline run --json prints it) and the totals
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "FAILED"
    assert summary["totals"] == {"ran": 2, "present": 2, "failed": 1}
    assert [run["run_date"] for run in summary["runs"]] == DATES
    failed = summary["runs"][3]
    assert set(failed) == {"status", "model", "run_date", "tasks", "gate", "champion", "error"}
    assert (failed["error"]["task"], failed["error"]["type"]) == ("train", "InvalidDatasetError")
    for run in summary["runs"][:3] + summary["runs"][4:]:
        published = Path(unquote(urlparse(run["tasks"]["upload"]["target"]).path))
        assert published.is_file(), run


def test_cli_backfill_text_mode_prints_a_line_per_date_and_the_totals(tmp_path: Path) -> None:
    result = _backfill_cli("--from", DATES[0], "--to", DATES[1], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"  {DATES[0]}  ran      ran download, train, upload" in result.stdout
    assert f"  {DATES[1]}  ran      ran download, train, upload" in result.stdout
    assert "SUCCEEDED: ran 2, present 0, failed 0" in result.stdout
    assert "start  Run the pipeline for each date" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "2026-11-05", "--to", "2026-11-01"), "is before its from"),
        (("--from", "2026-01-01", "--to", "2027-01-02"), "367 dates; at most 366"),
        (("--from", "2026-11-01", "--to", "2026-13-01"), "not a valid date"),
        (("--from", "2026-11-01", "--to", "2026-11-02", "--max-concurrency", "0"), "max_concurrency must be"),
    ],
)
def test_cli_backfill_refuses_a_bad_range_before_anything_starts(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = _backfill_cli(*args, "--json", cwd=tmp_path)
    assert result.returncode == 2
    assert "InvalidRequestError" in result.stderr
    assert message in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / ".pipeline").exists()


def test_moto_still_needs_the_nested_executions_patch(backfill: LocalBackfill, options: dict[str, Any]) -> None:
    """pipeline_local.nested supplies what moto 5.2 leaves out; when this fails, moto does it itself: drop the patch."""
    with backfill.lambdas.active():
        arn = backfill.sfn.start_execution(
            stateMachineArn=backfill.state_machine_arn,
            input=json.dumps({"from": DATES[0], "to": DATES[0], "input": options}),
        )["executionArn"]
        backfill.pipeline.wait(arn, timeout=60)
    (run,) = backfill.summary(arn)["runs"]
    assert run["error"] == {"type": "States.Runtime", "message": "'StateMachineArn'"}


def test_the_moto_series_patched_is_the_one_pinned() -> None:
    pins = (REPO_ROOT / "requirements" / "run.txt").read_text().splitlines()
    (moto_pin,) = [line for line in pins if line.startswith("moto==")]
    assert moto_pin.removeprefix("moto==").startswith(MOTO_SERIES)


def test_a_failed_report_step_stops_the_backfill_with_its_error(
    backfill: LocalBackfill, options: dict[str, Any]
) -> None:
    report = backfill.lambdas.handlers["report"]

    def failing_for_backfills(event: Any, context: Any) -> Any:
        if "backfill_results" in event:
            raise RuntimeError("the report failed")
        return report(event, context)

    backfill.lambdas.handlers["report"] = failing_for_backfills
    summary = backfill.run({"from": DATES[0], "to": DATES[0], "input": options})
    assert summary["status"] == "FAILED"
    assert summary["error"] == {"task": "backfill", "type": "RuntimeError", "message": "the report failed"}
    execution = backfill.sfn.list_executions(stateMachineArn=backfill.state_machine_arn)["executions"][0]
    assert backfill.sfn.describe_execution(executionArn=execution["executionArn"])["error"] == "RuntimeError"
