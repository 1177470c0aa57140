"""The quality gate and the champion, through the real ASL and on both stores."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlpipe import champion, loading
from mlpipe.exceptions import IntegrityError
from mlpipe.steps import TASKS
from mlpipe.storage import LocalTarget, S3Target
from pipeline_local.runner import LocalPipeline
from tests.cards import publish_fake
from tests.conftest import ARTIFACTS, MODELS, s3_keys
from tests.integration.conftest import DATE, states
from tests.stores import store as new_store

Input = Callable[..., dict[str, Any]]
ROOT = f"s3://{MODELS}/iris"  # the runs' publish root
PUBLISH = f"{ROOT}/iris"  # model iris's published location there: its champion


def trainings(pipeline: LocalPipeline) -> int:
    return [name for name, _ in pipeline.lambdas.invocations].count("train")


def current(aws: Any) -> dict[str, Any] | None:
    return champion.read_champion(PUBLISH, store=new_store())


def test_a_model_below_the_threshold_is_rejected_kept_and_published_without_retraining_once_lowered(
    aws: Any, pipeline: LocalPipeline, run_input: Input
) -> None:
    # Given a threshold above what the Iris data allows
    rejected = pipeline.run(run_input(min_cv_accuracy=0.999))
    # Then the run fails with ModelRejectedError naming the numbers, and nothing is published
    assert rejected["status"] == "FAILED"
    assert (rejected["error"]["task"], rejected["error"]["type"]) == ("gate", "ModelRejectedError")
    assert "CV accuracy 0.9533 is below the threshold 0.9990 (min_cv_accuracy 0.9990)" in rejected["error"]["message"]
    assert states(rejected) == {"download": "ran", "train": "ran", "upload": "not_run"}
    assert rejected["gate"]["passed"] is False
    assert s3_keys(aws, MODELS) == []
    model_key = rejected["tasks"]["train"]["target"].split("/", 3)[3]
    assert model_key in s3_keys(aws, ARTIFACTS)  # kept for inspection
    # When the same date runs again: rejected again, without retraining
    again = pipeline.run(run_input(min_cv_accuracy=0.999))
    assert again["error"]["type"] == "ModelRejectedError"
    assert states(again) == {"download": "present", "train": "present", "upload": "not_run"}
    assert trainings(pipeline) == 1
    # When the threshold is lowered: published without retraining, and the first champion
    lowered = pipeline.run(run_input(min_cv_accuracy=0.9))
    assert lowered["status"] == "SUCCEEDED", lowered["error"]
    assert states(lowered) == {"download": "present", "train": "present", "upload": "ran"}
    assert trainings(pipeline) == 1
    assert lowered["gate"]["passed"] is True
    assert lowered["champion"]["promoted"] is True
    manifest = current(aws)
    assert manifest is not None
    assert manifest["model_uri"] == lowered["tasks"]["upload"]["target"]
    assert manifest["previous"] is None


def test_a_model_worse_than_the_champion_is_rejected_with_both_numbers(
    aws: Any, pipeline: LocalPipeline, run_input: Input
) -> None:
    first = pipeline.run(run_input())
    assert first["champion"]["promoted"] is True
    worse = pipeline.run(run_input(hyperparameters={"kernel": "sigmoid", "C": 0.01}, max_regression=0.01))
    assert worse["error"]["type"] == "ModelRejectedError", worse
    message = worse["error"]["message"]
    gate = worse["gate"]
    assert f"CV accuracy {gate['cv_accuracy']:.4f}" in message
    assert f"{gate['champion_cv_accuracy']:.4f} less max_regression 0.0100" in message
    assert gate["champion_cv_accuracy"] == pytest.approx(first["gate"]["cv_accuracy"])
    assert current(aws)["model_uri"] == first["tasks"]["upload"]["target"]  # type: ignore[index]


def test_the_champion_moves_to_newer_dates_and_same_date_models_but_not_to_a_backfilled_older_date(
    aws: Any, pipeline: LocalPipeline, run_input: Input
) -> None:
    first = pipeline.run(run_input())
    newer = pipeline.run(run_input(run_date="2026-11-27"))
    assert newer["champion"]["promoted"] is True
    assert current(aws)["previous"]["model_uri"] == first["tasks"]["upload"]["target"]  # type: ignore[index]
    older = pipeline.run(run_input(run_date="2026-11-26"))
    assert older["status"] == "SUCCEEDED"
    assert older["champion"]["promoted"] is False
    assert "newer run date (2026-11-27 > 2026-11-26)" in older["champion"]["reason"]
    same_date = pipeline.run(run_input(run_date="2026-11-27", hyperparameters={"C": 3}))
    assert same_date["champion"]["promoted"] is True
    manifest = current(aws)
    assert manifest is not None
    assert manifest["model_uri"] == same_date["tasks"]["upload"]["target"]
    assert manifest["previous"]["model_uri"] == newer["tasks"]["upload"]["target"]
    assert "previous" not in manifest["previous"] or manifest["previous"]["previous"] is None
    history = champion.champion_history(PUBLISH, store=new_store())
    assert [h["model_uri"] for h in history] == [
        first["tasks"]["upload"]["target"],
        newer["tasks"]["upload"]["target"],
        same_date["tasks"]["upload"]["target"],
    ]
    # An all-present rerun of the older date changes nothing
    assert pipeline.run(run_input(run_date="2026-11-26"))["champion"] is None
    assert len(champion.champion_history(PUBLISH, store=new_store())) == 3


def test_a_promotion_that_never_happened_is_resumed_by_the_next_run(
    aws: Any, pipeline: LocalPipeline, run_input: Input
) -> None:
    first = pipeline.run(run_input())
    aws.delete_object(Bucket=MODELS, Key="iris/iris/champion.json")
    for entry in s3_keys(aws, MODELS):
        if entry.startswith("iris/iris/champion-history/"):
            aws.delete_object(Bucket=MODELS, Key=entry)
    resumed = pipeline.run(run_input())
    assert states(resumed) == dict.fromkeys(TASKS, "present")
    assert resumed["champion"]["promoted"] is True
    assert current(aws)["model_uri"] == first["tasks"]["upload"]["target"]  # type: ignore[index]


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "s3":
        request.getfixturevalue("aws")
        yield PUBLISH
    else:
        yield str(tmp_path / "published")


def test_two_concurrent_promotions_end_with_the_newer_one_and_lose_no_write(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two models of the same date published at once, and promotions that both read the manifest
    # before either writes it (a barrier holds each reader until the other has read)
    first, second = publish_fake(store, DATE, "aaaa"), publish_fake(store, DATE, "bbbb")
    barrier = threading.Barrier(2, timeout=10)
    reads = threading.local()

    def reading(original: Any) -> Any:
        def read(self: Any) -> Any:
            result = original(self)
            if self.uri.endswith("champion.json") and not getattr(reads, "done", False):
                reads.done = True
                barrier.wait()
            return result

        return read

    for cls in (LocalTarget, S3Target):
        monkeypatch.setattr(cls, "read_versioned", reading(cls.read_versioned))
    results: dict[str, Any] = {}

    def promote(uri: str) -> None:
        results[uri] = champion.promote(store, uri, DATE, promoted_by=uri, store=new_store())

    threads = [threading.Thread(target=promote, args=(uri,)) for uri in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    monkeypatch.undo()
    # Then both promoted (the loser of the swap read again and replaced the winner), the history has both
    assert all(result.promoted for result in results.values())
    history = champion.champion_history(store, store=new_store())
    assert sorted(h["model_uri"] for h in history) == sorted([first, second])
    manifest = champion.read_champion(store, store=new_store())
    assert manifest is not None
    assert manifest["model_uri"] == history[-1]["model_uri"]
    assert manifest["previous"]["model_uri"] == history[0]["model_uri"]


def test_concurrent_promotions_of_two_dates_leave_the_newer_date_champion(store: str) -> None:
    older, newer = publish_fake(store, "2026-11-24", "cccc"), publish_fake(store, "2026-11-25", "dddd")
    barrier = threading.Barrier(2, timeout=10)

    def promote(uri: str, date: str) -> None:
        barrier.wait()
        champion.promote(store, uri, date, promoted_by=date, store=new_store())

    threads = [threading.Thread(target=promote, args=a) for a in ((older, "2026-11-24"), (newer, "2026-11-25"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert champion.read_champion(store, store=new_store())["model_uri"] == newer  # type: ignore[index]


def test_rollback_and_promote_by_hand_are_recorded(store: str) -> None:
    one, two = publish_fake(store, "2026-11-24", "eeee"), publish_fake(store, "2026-11-25", "ffff")
    champion.promote(store, one, "2026-11-24", promoted_by="test", store=new_store())
    champion.promote(store, two, "2026-11-25", promoted_by="test", store=new_store())
    back = champion.rollback(store, promoted_by="operator", store=new_store())
    assert back.champion is not None
    assert champion.read_champion(store, store=new_store())["model_uri"] == one  # type: ignore[index]
    assert champion.read_champion(store, store=new_store())["previous"]["model_uri"] == two  # type: ignore[index]
    by_hand = champion.set_champion(store, two, promoted_by="operator", store=new_store())
    assert by_hand.promoted
    actions = [h["action"] for h in champion.champion_history(store, store=new_store())]
    assert actions == ["promote", "promote", "rollback", "manual"]


def test_load_champion_refuses_a_deleted_or_corrupted_champion_naming_it(
    aws: Any, pipeline: LocalPipeline, run_input: Input
) -> None:
    summary = pipeline.run(run_input())
    model, _ = loading.load_champion(ROOT)
    assert list(model.predict([[5.1, 3.5, 1.4, 0.2]])) == ["Iris-setosa"]
    key = summary["tasks"]["upload"]["target"].split("/", 3)[3]
    identity = key.split("/")[3]
    aws.put_object(Bucket=MODELS, Key=key, Body=b"corrupted")
    with pytest.raises(IntegrityError, match=f"the champion {identity}.*sha256"):
        loading.load_champion(ROOT)
    aws.delete_object(Bucket=MODELS, Key=key)
    with pytest.raises(IntegrityError, match=f"the champion {identity}.*no model"):
        loading.load_champion(ROOT)


def test_a_promotion_is_announced_on_eventbridge(aws: Any, run_input: Input, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a rule on the default bus that sends mlpipe's promotions to a queue
    monkeypatch.setenv("EVENT_BUS_NAME", "default")
    events, sqs = boto3.client("events"), boto3.client("sqs")
    queue = sqs.create_queue(QueueName="promotions")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="promotions", EventPattern=json.dumps({"source": ["mlpipe"], "detail-type": ["Model promoted"]})
    )
    events.put_targets(Rule="promotions", Targets=[{"Id": "queue", "Arn": arn}])
    # When a run publishes its first model
    summary = LocalPipeline(retry_delay_scale=0.0).run(run_input())
    assert summary["champion"]["promoted"] is True
    # Then the event carries the manifest
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert len(messages) == 1
    event = json.loads(messages[0]["Body"])
    assert (event["source"], event["detail-type"]) == ("mlpipe", "Model promoted")
    assert event["detail"] == champion.read_champion(PUBLISH, store=new_store())


def test_a_retried_promote_step_reports_its_own_promotion_and_writes_one_history_entry(store: str) -> None:
    uri = publish_fake(store, DATE, "gggg")
    first = champion.promote(store, uri, DATE, promoted_by="execution-1", store=new_store())
    again = champion.promote(store, uri, DATE, promoted_by="execution-1", store=new_store())
    other = champion.promote(store, uri, DATE, promoted_by="execution-2", store=new_store())
    assert (first.promoted, again.promoted, other.promoted) == (True, True, False)
    assert "earlier attempt" in again.reason
    assert len(champion.champion_history(store, store=new_store())) == 1


def test_the_promotion_checks_max_regression_against_the_champion_it_finds(store: str) -> None:
    good, worse = publish_fake(store, DATE, "hhhh", accuracy=0.95), publish_fake(store, DATE, "iiii", accuracy=0.80)
    champion.promote(store, good, DATE, promoted_by="a", store=new_store())
    refused = champion.promote(store, worse, DATE, promoted_by="b", max_regression=0.05, store=new_store())
    assert not refused.promoted
    assert "0.8000 is more than max_regression 0.0500 below the champion published-hhhh's 0.9500" in refused.reason
    assert champion.read_champion(store, store=new_store())["model_uri"] == good  # type: ignore[index]


def test_a_rerun_does_not_undo_a_rollback(aws: Any, pipeline: LocalPipeline, run_input: Input) -> None:
    oldest = pipeline.run(run_input(run_date="2026-11-21"))
    pipeline.run(run_input(run_date="2026-11-23"))
    refused = pipeline.run(run_input(run_date="2026-11-22"))  # an older date: published, not promoted
    assert refused["champion"]["promoted"] is False
    champion.rollback(PUBLISH, promoted_by="operator", store=new_store())  # back to 2026-11-21
    rerun = pipeline.run(run_input(run_date="2026-11-22"))
    assert set(states(rerun).values()) == {"present"}
    assert rerun["champion"] is None  # not due: the champion was decided on after it was published
    assert current(aws)["model_uri"] == oldest["tasks"]["upload"]["target"]  # type: ignore[index]
