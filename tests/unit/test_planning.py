"""The plan on its own (mlpipe.planning): what exists decides where the run starts, and the gate on an existing model.

On local directories; on S3 (moto) for a missing bucket.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from mlpipe import planning
from mlpipe.artifacts import CARD_FILE, write_model
from mlpipe.champion import HISTORY_DIR, promote, rollback, set_champion
from mlpipe.config import Run
from mlpipe.exceptions import StorageError
from mlpipe.planning import complete, model_gate, plan_run, promotion_due
from mlpipe.steps import OUTPUTS, TASKS
from mlpipe.storage import join_uri
from tests.cards import card, publish_fake
from tests.conftest import ARTIFACTS, MODELS
from tests.stores import store, target

DAY, NEXT_DAY, DAY_BEFORE = "2026-11-25", "2026-11-26", "2026-11-24"
NAME = "abcd"  # each target's folder is <family>-abcd
MODEL = b"the trained model"


def make_run(artifact_root: str, publish_root: str | None, **fields: Any) -> Run:
    """A run of DAY whose targets are ``<root>/<DAY>/<family>-abcd/<file>``, as the plan's identities make them."""
    roots = {"artifact_root": artifact_root, "publish_uri": publish_root or artifact_root}
    uris: dict[str, Any] = {
        output.field: join_uri(roots[output.root], DAY, f"{output.family}-{NAME}", output.file)
        for output in OUTPUTS.values()
    }
    return Run(run_date=DAY, **uris, publish_root=publish_root, **fields)


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return make_run(str(tmp_path / "runs"), str(tmp_path / "published"))


def states(plan: dict[str, Any]) -> dict[str, str]:
    return {task: found["state"] for task, found in plan["tasks"].items()}


def write_dataset(run: Run) -> None:
    target(run.dataset_uri).write_bytes(b"1,2,a\n")


def write_trained(run: Run, accuracy: float = 0.95) -> dict[str, Any]:
    found = card(MODEL, accuracy=accuracy)
    write_model(target(run.model_uri), MODEL, found)
    return found


def publish(run: Run, *, created_at: str | None = None) -> str:
    """The run's own published model (published-abcd of DAY) and its card."""
    assert run.publish_root is not None
    uri = publish_fake(run.publish_root, DAY, NAME, created_at=created_at)
    assert target(uri).uri == target(run.published_uri).uri
    return uri


def test_nothing_exists_so_everything_is_pending_from_download(run: Run) -> None:
    plan = plan_run(run, store=store())
    assert plan["start_at"] == TASKS[0]
    assert states(plan) == dict.fromkeys(TASKS, "pending")
    assert {task: found["target"] for task, found in plan["tasks"].items()} == {
        task: getattr(run, output.field) for task, output in OUTPUTS.items()
    }
    assert plan["run"] == run.to_event()


def test_a_dataset_alone_starts_at_train(run: Run) -> None:
    write_dataset(run)
    plan = plan_run(run, store=store())
    assert plan["start_at"] == "train"
    assert states(plan) == {"download": "present", "train": "pending", "upload": "pending"}
    assert "gate" not in plan["tasks"]["train"]


@pytest.mark.parametrize(("dataset", "download"), [(True, "present"), (False, "not_run")])
def test_a_complete_model_starts_at_upload_with_the_gates_numbers(run: Run, dataset: bool, download: str) -> None:
    if dataset:
        write_dataset(run)
    write_trained(run, accuracy=0.95)
    plan = plan_run(dataclasses.replace(run, min_cv_accuracy=0.9), store=store())
    assert plan["start_at"] == "upload"
    assert states(plan) == {"download": download, "train": "present", "upload": "pending"}
    gate = plan["tasks"]["train"]["gate"]
    assert (gate["cv_accuracy"], gate["threshold"], gate["passed"]) == (0.95, 0.9, True)
    assert gate["reason"] == "CV accuracy 0.9500 meets the threshold 0.9000 (min_cv_accuracy 0.9000)"


def test_the_plans_gate_reads_the_champion_under_the_publish_root(run: Run) -> None:
    # Given a champion of 0.99 on the same labels, and a trained model of 0.95 with max_regression 0.01
    assert run.publish_root is not None
    best = publish_fake(run.publish_root, DAY_BEFORE, "best", accuracy=0.99)
    promote(run.publish_root, best, DAY_BEFORE, promoted_by="earlier", store=store())
    write_trained(run, accuracy=0.95)
    plan = plan_run(dataclasses.replace(run, max_regression=0.01), store=store())
    # Then the plan still starts at upload (the state machine's Choice reads the gate), which rejects it
    assert plan["start_at"] == "upload"
    gate = plan["tasks"]["train"]["gate"]
    assert gate["passed"] is False
    assert gate["threshold"] == pytest.approx(0.98)
    assert (gate["champion_identity"], gate["champion_cv_accuracy"]) == ("published-best", 0.99)
    assert f"model {target(run.model_uri).uri} is rejected" in gate["reason"]


def test_model_gate_without_a_publish_root_has_no_champion(tmp_path: Path) -> None:
    run = make_run(str(tmp_path / "runs"), None, max_regression=0.01)
    gate = model_gate(run, card(MODEL, accuracy=0.5), store=store())
    assert (gate["champion_identity"], gate["threshold"], gate["passed"]) == (None, None, True)


@pytest.mark.parametrize("written", [OUTPUTS["train"].file, CARD_FILE])
def test_a_model_without_its_card_or_a_card_without_its_model_is_not_complete(run: Run, written: str) -> None:
    write_dataset(run)
    target(run.model_uri).sibling(written).write_bytes(b"{}")
    assert complete(target(run.model_uri), "train") is False
    plan = plan_run(run, store=store())
    assert plan["start_at"] == "train"
    assert states(plan) == {"download": "present", "train": "pending", "upload": "pending"}


def test_complete_asks_a_card_only_of_the_tasks_whose_output_has_one(run: Run) -> None:
    for task, output in OUTPUTS.items():
        uri = getattr(run, output.field)
        target(uri).write_bytes(b"bytes")
        assert complete(target(uri), task) is not output.card, task
        target(uri).sibling(CARD_FILE).write_bytes(b"{}")
        assert complete(target(uri), task) is not output.card, task  # a card must record the model's bytes
        target(uri).sibling(CARD_FILE).write_bytes(json.dumps(card(b"bytes")).encode(), overwrite=True)
        assert complete(target(uri), task) is True, task


def test_a_published_champion_needs_nothing(run: Run) -> None:
    assert run.publish_root is not None
    promote(run.publish_root, publish(run), DAY, promoted_by="execution-1", store=store())
    plan = plan_run(run, store=store())
    assert plan["start_at"] == "none"
    assert states(plan) == {"download": "not_run", "train": "not_run", "upload": "present"}
    assert "gate" not in plan["tasks"]["train"]


def test_the_champion_is_not_due_even_when_its_history_entry_is_missing(run: Run) -> None:
    assert run.publish_root is not None
    promote(run.publish_root, publish(run), DAY, promoted_by="execution-1", store=store())
    for item in store().list(join_uri(run.publish_root, HISTORY_DIR)):  # its promote step stopped after the swap
        target(item.uri).delete()
    assert promotion_due(run, store=store()) is False


def test_a_published_model_never_promoted_resumes_at_promote(run: Run) -> None:
    write_dataset(run)
    write_trained(run)
    publish(run)
    assert promotion_due(run, store=store()) is True
    plan = plan_run(run, store=store())
    assert plan["start_at"] == "promote"
    assert states(plan) == dict.fromkeys(TASKS, "present")


def test_without_a_publish_root_a_published_model_is_not_promoted(tmp_path: Path) -> None:
    run = make_run(str(tmp_path / "runs"), None)
    publish_fake(str(tmp_path / "runs"), DAY, NAME)
    assert plan_run(run, store=store())["start_at"] == "none"


def test_a_published_model_is_not_due_once_rolled_back(run: Run) -> None:
    assert run.publish_root is not None
    older = publish_fake(run.publish_root, DAY_BEFORE, "older")
    promote(run.publish_root, older, DAY_BEFORE, promoted_by="execution-1", store=store())
    promote(run.publish_root, publish(run), DAY, promoted_by="execution-2", store=store())
    rollback(run.publish_root, promoted_by="operator", store=store())  # back to DAY_BEFORE's
    assert promotion_due(run, store=store()) is False
    assert plan_run(run, store=store())["start_at"] == "none"


def test_a_published_model_is_not_due_when_the_champion_changed_after_it_was_published(run: Run) -> None:
    assert run.publish_root is not None
    published_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    publish(run, created_at=published_at.isoformat())
    other = publish_fake(run.publish_root, DAY, "other")
    set_champion(run.publish_root, other, promoted_by="operator", store=store())  # a decision since
    assert promotion_due(run, store=store()) is False


def test_a_published_model_is_due_when_the_champion_last_changed_before_it_was_published(run: Run) -> None:
    assert run.publish_root is not None
    other = publish_fake(run.publish_root, DAY_BEFORE, "other")
    promote(run.publish_root, other, DAY_BEFORE, promoted_by="execution-1", store=store())
    publish(run, created_at=(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat())
    assert promotion_due(run, store=store()) is True
    assert plan_run(run, store=store())["start_at"] == "promote"


def test_a_published_model_is_not_due_under_a_champion_of_a_newer_date(run: Run) -> None:
    assert run.publish_root is not None
    newer = publish_fake(run.publish_root, NEXT_DAY, "newer")
    promote(run.publish_root, newer, NEXT_DAY, promoted_by="execution-1", store=store())
    publish(run, created_at=(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat())
    assert promotion_due(run, store=store()) is False


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the plan looks at any target (it must fail on the roots first)."""

    def looked(*args: Any) -> bool:
        raise AssertionError(f"the plan looked at {args} before checking the roots")

    monkeypatch.setattr(planning, "complete", looked)


@pytest.mark.parametrize(
    ("artifacts", "published", "named"),
    [
        ("s3://mlpipe-test-no-such-bucket/runs", f"s3://{MODELS}/iris", "mlpipe-test-no-such-bucket"),
        (f"s3://{ARTIFACTS}/runs", "s3://mlpipe-test-no-such-bucket/iris", "mlpipe-test-no-such-bucket"),
    ],
    ids=["artifacts", "published"],
)
def test_a_missing_bucket_fails_before_any_work(
    aws: Any, no_work: None, artifacts: str, published: str, named: str
) -> None:
    with pytest.raises(StorageError, match=named):
        plan_run(make_run(artifacts, published), store=store())


def test_a_root_under_a_file_fails_before_any_work(tmp_path: Path, no_work: None) -> None:
    (tmp_path / "runs").write_text("not a directory")
    with pytest.raises(StorageError, match="is not a directory"):
        plan_run(make_run(str(tmp_path / "runs"), str(tmp_path / "published")), store=store())
