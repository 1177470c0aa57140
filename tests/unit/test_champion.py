"""The champion on its own (mlpipe.champion): the promotion rules, by hand, rollback and the history.

On local directories; on S3 (moto) where the compare-and-swap is what is tested (``If-Match``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from mlpipe import champion
from mlpipe.artifacts import CARD_FILE
from mlpipe.champion import (
    CHAMPION_FILE,
    HISTORY_DIR,
    Promotion,
    champion_history,
    champion_uri,
    manifest_for,
    promote,
    read_champion,
    record_history,
    rollback,
    set_champion,
)
from mlpipe.exceptions import IntegrityError, InvalidRequestError, StorageError, TargetChangedError
from mlpipe.storage import LocalTarget, S3Target, Target, join_uri
from tests.cards import card, publish_fake
from tests.conftest import MODELS
from tests.stores import store, target

DAY, NEXT_DAY, DAY_BEFORE = "2026-11-25", "2026-11-26", "2026-11-24"


@pytest.fixture
def root(tmp_path: Path) -> str:
    """A local publish location (nothing there yet)."""
    return str(tmp_path / "published")


def current(root: str) -> dict[str, Any]:
    manifest = read_champion(root, store=store())
    assert manifest is not None
    return manifest


def history(root: str) -> list[dict[str, Any]]:
    return champion_history(root, store=store())


def history_names(root: str) -> list[str]:
    return [item.relative for item in store().list(join_uri(root, HISTORY_DIR))]


def test_there_is_no_champion_before_the_first_promotion(root: str) -> None:
    assert read_champion(root, store=store()) is None
    assert history(root) == []


def test_the_first_promotion_makes_the_first_champion_and_records_it(root: str) -> None:
    uri = publish_fake(root, DAY, "aaaa", accuracy=0.93, classes=["x", "y"])
    result = promote(root, uri, DAY, promoted_by="execution-1", store=store())
    assert result.promoted is True
    assert result.reason == "promoted published-aaaa to the first champion"
    manifest = current(root)
    assert result.champion == manifest
    assert {name: manifest[name] for name in ("model_uri", "identity", "run_date", "classes", "action")} == {
        "model_uri": target(uri).uri,
        "identity": "published-aaaa",
        "run_date": DAY,
        "classes": ["x", "y"],
        "action": "promote",
    }
    assert manifest["sha256"] == hashlib.sha256(b"model aaaa").hexdigest()
    assert manifest["metrics"]["cv_accuracy"] == 0.93
    assert (manifest["promoted_by"], manifest["previous"]) == ("execution-1", None)
    assert history(root) == [manifest]
    assert result.as_dict(root) == {
        "promoted": True,
        "reason": result.reason,
        "champion_uri": champion_uri(root),
        "model_uri": target(uri).uri,
        "identity": "published-aaaa",
    }


@pytest.mark.parametrize("date", [NEXT_DAY, DAY], ids=["newer date", "same date"])
def test_a_model_of_a_newer_or_the_same_date_replaces_the_champion(root: str, date: str) -> None:
    first = publish_fake(root, DAY, "aaaa")
    second = publish_fake(root, date, "bbbb")
    promote(root, first, DAY, promoted_by="execution-1", store=store())
    result = promote(root, second, date, promoted_by="execution-2", store=store())
    assert result.promoted is True
    assert result.reason == "promoted published-bbbb to the champion, replacing published-aaaa"
    manifest = current(root)
    assert manifest["model_uri"] == target(second).uri
    assert manifest["previous"]["model_uri"] == target(first).uri
    assert manifest["previous"]["previous"] is None  # one level only: the history has the rest
    assert [entry["identity"] for entry in history(root)] == ["published-aaaa", "published-bbbb"]


def test_the_manifest_keeps_one_previous_champion_and_the_history_the_rest(root: str) -> None:
    for date, name in [(DAY_BEFORE, "aaaa"), (DAY, "bbbb"), (NEXT_DAY, "cccc")]:
        promote(root, publish_fake(root, date, name), date, promoted_by=name, store=store())
    manifest = current(root)
    assert manifest["previous"]["identity"] == "published-bbbb"
    assert manifest["previous"]["previous"] is None
    assert [entry["identity"] for entry in history(root)] == ["published-aaaa", "published-bbbb", "published-cccc"]


def test_a_model_of_an_older_date_is_refused_with_the_reason_and_nothing_changes(root: str) -> None:
    newer, older = publish_fake(root, NEXT_DAY, "bbbb"), publish_fake(root, DAY, "aaaa")
    promote(root, newer, NEXT_DAY, promoted_by="execution-1", store=store())
    before = current(root)
    result = promote(root, older, DAY, promoted_by="execution-2", store=store())
    assert result.promoted is False
    assert result.reason == (f"not promoted: the champion published-bbbb is of a newer run date ({NEXT_DAY} > {DAY})")
    assert result.champion == before
    assert current(root) == before
    assert len(history(root)) == 1


def test_max_regression_is_checked_again_at_the_swap(root: str) -> None:
    good, worse = publish_fake(root, DAY, "aaaa", accuracy=0.95), publish_fake(root, DAY, "bbbb", accuracy=0.80)
    promote(root, good, DAY, promoted_by="a", store=store())
    result = promote(root, worse, DAY, promoted_by="b", max_regression=0.05, store=store())
    assert result.promoted is False
    assert result.reason == (
        "not promoted: its CV accuracy 0.8000 is more than max_regression 0.0500 below the champion "
        "published-aaaa's 0.9500 (the champion changed after the gate)"
    )
    assert current(root)["model_uri"] == target(good).uri
    assert len(history(root)) == 1


def test_max_regression_lets_through_a_model_within_it(root: str) -> None:
    good = publish_fake(root, DAY, "aaaa", accuracy=0.95)
    other = publish_fake(root, DAY, "bbbb", accuracy=0.91)
    promote(root, good, DAY, promoted_by="a", store=store())
    assert promote(root, other, DAY, promoted_by="b", max_regression=0.05, store=store()).promoted is True
    assert current(root)["model_uri"] == target(other).uri


def test_a_model_of_another_label_set_is_never_promoted_automatically_and_by_hand_says_what_changes(
    root: str,
) -> None:
    good = publish_fake(root, DAY, "aaaa", accuracy=0.5)
    other = publish_fake(root, NEXT_DAY, "bbbb", accuracy=0.99, classes=["a", "b", "c"])
    promote(root, good, DAY, promoted_by="a", store=store())
    refused = promote(root, other, NEXT_DAY, promoted_by="b", store=store())
    assert refused.promoted is False
    assert refused.reason.startswith("not promoted: its schema differs from the champion published-aaaa's")
    assert "new classes 'c'" in refused.reason
    assert current(root)["model_uri"] == target(good).uri
    by_hand = set_champion(root, other, promoted_by="me", store=store())
    assert by_hand.promoted is True
    assert by_hand.reason.endswith("; for consumers of the champion: the label set changes; new classes 'c'")


def test_on_the_same_dataset_a_lower_score_is_published_but_not_promoted(root: str) -> None:
    good = publish_fake(root, DAY, "aaaa", accuracy=0.6345, dataset="dataset-1")
    worse = publish_fake(root, DAY, "bbbb", accuracy=0.5989, dataset="dataset-1")
    promote(root, good, DAY, promoted_by="a", store=store())
    result = promote(root, worse, DAY, promoted_by="b", store=store())
    assert result.promoted is False
    assert result.reason.startswith(
        "not promoted: its CV accuracy 0.5989 is below the champion's 0.6345 on the same dataset (dataset-1;"
    )
    assert current(root)["model_uri"] == target(good).uri
    assert current(root)["metrics"]["score"] == 0.6345
    assert current(root)["metrics"]["score_name"] == "cv_accuracy"


def test_on_the_same_dataset_an_equal_score_wins_and_on_another_dataset_the_newest_date_wins(root: str) -> None:
    first = publish_fake(root, DAY, "aaaa", accuracy=0.8, dataset="dataset-1")
    equal = publish_fake(root, DAY, "bbbb", accuracy=0.8, dataset="dataset-1")
    other_data = publish_fake(root, DAY, "cccc", accuracy=0.5, dataset="dataset-2")
    promote(root, first, DAY, promoted_by="a", store=store())
    assert promote(root, equal, DAY, promoted_by="b", store=store()).promoted is True
    assert promote(root, other_data, DAY, promoted_by="c", store=store()).promoted is True
    assert current(root)["dataset_identity"] == "dataset-2"


def test_a_retried_promote_of_the_same_execution_reports_promoted_and_another_one_is_told_so(root: str) -> None:
    uri = publish_fake(root, DAY, "aaaa")
    first = promote(root, uri, DAY, promoted_by="execution-1", store=store())
    again = promote(root, uri, DAY, promoted_by="execution-1", store=store())
    assert again.promoted is True
    assert again.reason == "promoted published-aaaa (on an earlier attempt of this step)"
    assert again.champion == first.champion
    other = promote(root, uri, DAY, promoted_by="execution-2", store=store())
    assert (other.promoted, other.reason) == (False, "already the champion (published-aaaa)")
    assert current(root) == first.champion
    assert len(history(root)) == 1


def test_a_retried_promote_writes_the_history_entry_an_earlier_attempt_did_not(root: str) -> None:
    uri = publish_fake(root, DAY, "aaaa")
    promote(root, uri, DAY, promoted_by="execution-1", store=store())
    [name] = history_names(root)
    target(join_uri(root, HISTORY_DIR, name)).delete()  # the first attempt stopped after the swap
    assert promote(root, uri, DAY, promoted_by="execution-1", store=store()).promoted is True
    assert history_names(root) == [name]
    assert history(root) == [current(root)]


def test_promote_refuses_a_published_model_its_card_does_not_describe(root: str) -> None:
    good, tampered = publish_fake(root, DAY, "aaaa"), publish_fake(root, NEXT_DAY, "bbbb")
    promote(root, good, DAY, promoted_by="execution-1", store=store())
    target(tampered).write_bytes(b"replaced", overwrite=True)
    with pytest.raises(IntegrityError, match=f"{hashlib.sha256(b'replaced').hexdigest()}.*is not made the champion"):
        promote(root, tampered, NEXT_DAY, promoted_by="execution-2", store=store())
    assert current(root)["model_uri"] == target(good).uri
    assert len(history(root)) == 1


def test_set_champion_promotes_any_date_by_hand(root: str) -> None:
    newer, older = publish_fake(root, NEXT_DAY, "bbbb"), publish_fake(root, DAY, "aaaa")
    promote(root, newer, NEXT_DAY, promoted_by="execution-1", store=store())
    result = set_champion(root, older, promoted_by="operator", store=store())
    assert result.promoted is True
    manifest = current(root)
    assert (manifest["model_uri"], manifest["run_date"]) == (target(older).uri, DAY)  # the date from its path
    assert (manifest["action"], manifest["promoted_by"]) == ("manual", "operator")
    assert manifest["previous"]["model_uri"] == target(newer).uri
    assert [entry["action"] for entry in history(root)] == ["promote", "manual"]


def test_promoting_the_champion_again_by_hand_keeps_its_previous_so_a_rollback_still_goes_back(root: str) -> None:
    # Given: A, then B by hand (A is B's previous)
    one, two = publish_fake(root, DAY, "aaaa"), publish_fake(root, DAY, "bbbb")
    promote(root, one, DAY, promoted_by="execution-1", store=store())
    set_champion(root, two, promoted_by="operator", store=store())
    # When: B is promoted by hand once more
    again = set_champion(root, two, promoted_by="operator", store=store())
    # Then: B stays champion, its previous is still A (never itself), and a rollback goes to A
    assert again.promoted is True
    assert again.reason == (
        "published-bbbb was the champion already: its manifest and data contract are written again; "
        "a rollback still goes to published-aaaa"
    )
    assert (current(root)["model_uri"], current(root)["previous"]["model_uri"]) == (target(two).uri, target(one).uri)
    assert rollback(root, promoted_by="operator", store=store()).champion["model_uri"] == target(one).uri  # type: ignore[index]


def test_a_rollback_to_another_label_set_says_what_changes_for_consumers(root: str) -> None:
    good = publish_fake(root, DAY, "aaaa")
    other = publish_fake(root, NEXT_DAY, "bbbb", classes=["a", "b", "c"])
    promote(root, good, DAY, promoted_by="a", store=store())
    set_champion(root, other, promoted_by="me", store=store())
    back = rollback(root, promoted_by="me", store=store())
    assert back.reason.startswith("rolled back to published-aaaa; for consumers of the champion: the label set changes")
    assert "classes no longer predicted 'c'" in back.reason


def test_set_champion_checks_the_bytes_against_the_card(root: str) -> None:
    good, tampered = publish_fake(root, DAY, "aaaa"), publish_fake(root, NEXT_DAY, "bbbb")
    promote(root, good, DAY, promoted_by="execution-1", store=store())
    target(tampered).write_bytes(b"replaced", overwrite=True)
    with pytest.raises(IntegrityError, match=f"has sha256 {hashlib.sha256(b'replaced').hexdigest()}, but its card"):
        set_champion(root, tampered, promoted_by="operator", store=store())
    assert current(root)["model_uri"] == target(good).uri
    assert len(history(root)) == 1


def test_set_champion_refuses_a_model_that_is_not_there(root: str) -> None:
    missing = join_uri(root, DAY, "published-none", "model.pkl")
    with pytest.raises(InvalidRequestError, match="there is no published model at"):
        set_champion(root, missing, promoted_by="operator", store=store())
    assert read_champion(root, store=store()) is None


def test_rollback_restores_the_previous_champion_and_records_it(root: str) -> None:
    one, two = publish_fake(root, DAY, "aaaa"), publish_fake(root, NEXT_DAY, "bbbb")
    promote(root, one, DAY, promoted_by="execution-1", store=store())
    promote(root, two, NEXT_DAY, promoted_by="execution-2", store=store())
    result = rollback(root, promoted_by="operator", store=store())
    assert (result.promoted, result.reason) == (True, "rolled back to published-aaaa")
    manifest = current(root)
    assert result.champion == manifest
    assert (manifest["model_uri"], manifest["run_date"]) == (target(one).uri, DAY)
    assert (manifest["action"], manifest["promoted_by"]) == ("rollback", "operator")
    assert manifest["previous"]["model_uri"] == target(two).uri  # rolling back again undoes the rollback
    assert manifest["previous"]["previous"] is None
    assert [entry["action"] for entry in history(root)] == ["promote", "promote", "rollback"]
    assert history(root)[-1] == manifest


def test_rollback_refuses_a_previous_model_replaced_since_it_was_champion(root: str) -> None:
    one, two = publish_fake(root, DAY, "aaaa"), publish_fake(root, NEXT_DAY, "bbbb")
    promote(root, one, DAY, promoted_by="execution-1", store=store())
    promote(root, two, NEXT_DAY, promoted_by="execution-2", store=store())
    before = current(root)
    replaced = b"another model"  # with a card that describes it: only the manifest's record catches it
    target(one).write_bytes(replaced, overwrite=True)
    target(one).sibling(CARD_FILE).write_bytes(json.dumps(card(replaced)).encode(), overwrite=True)
    with pytest.raises(IntegrityError, match=r"but the previous champion in .*champion\.json records"):
        rollback(root, promoted_by="operator", store=store())
    assert current(root) == before
    assert len(history(root)) == 2


def test_rollback_refuses_a_previous_champion_that_names_no_model(root: str) -> None:
    promote(root, publish_fake(root, DAY, "aaaa"), DAY, promoted_by="execution-1", store=store())
    manifest_target = target(champion_uri(root))
    broken = current(root) | {"previous": {"identity": "published-gone"}}
    manifest_target.write_bytes(json.dumps(broken).encode(), overwrite=True)
    with pytest.raises(IntegrityError, match=f"previous champion names no model; restore it from {HISTORY_DIR}/"):
        rollback(root, promoted_by="operator", store=store())
    assert current(root) == broken


def test_rollback_needs_a_previous_champion(root: str) -> None:
    with pytest.raises(InvalidRequestError, match="no previous champion to roll back to"):
        rollback(root, promoted_by="operator", store=store())
    promote(root, publish_fake(root, DAY, "aaaa"), DAY, promoted_by="execution-1", store=store())
    with pytest.raises(InvalidRequestError, match="no previous champion to roll back to"):
        rollback(root, promoted_by="operator", store=store())
    assert len(history(root)) == 1


def manifest(identity: str, promoted_at: str, promoted_by: str = "operator") -> dict[str, Any]:
    return {"model_uri": f"s3://{MODELS}/x/{identity}/model.pkl", "identity": identity} | {
        "promoted_at": promoted_at,
        "promoted_by": promoted_by,
    }


def test_a_history_entry_is_named_by_when_what_and_who_and_written_once(root: str) -> None:
    entry = manifest("published-aaaa", "2026-11-25T21:42:02.177297+00:00")
    record_history(root, entry, store=store())
    record_history(root, entry | {"note": "a retry"}, store=store())
    who = hashlib.sha256(b"operator").hexdigest()[:6]
    assert history_names(root) == [f"20261125T214202.177297Z-published-aaaa-{who}.json"]
    assert history(root) == [entry]  # the first write stays
    record_history(root, manifest("published-aaaa", entry["promoted_at"], "someone else"), store=store())
    assert len(history_names(root)) == 2


def test_the_history_is_oldest_first(root: str) -> None:
    for identity, when in [
        ("published-b", "2026-11-25T10:00:00.000002+00:00"),
        ("published-a", "2026-11-25T10:00:00.000001+00:00"),
    ]:
        record_history(root, manifest(identity, when), store=store())
    assert [entry["identity"] for entry in history(root)] == ["published-a", "published-b"]


@pytest.mark.parametrize("document", [b"{not json", b'{"identity": "published-aaaa"}', b"[]"])
def test_a_corrupted_champion_json_is_an_integrity_error_naming_champion_history(root: str, document: bytes) -> None:
    target(champion_uri(root)).write_bytes(document)
    with pytest.raises(IntegrityError, match=f"{CHAMPION_FILE} is .*restore it from {HISTORY_DIR}/"):
        read_champion(root, store=store())
    uri = publish_fake(root, DAY, "aaaa")
    with pytest.raises(IntegrityError, match=f"restore it from {HISTORY_DIR}/"):
        promote(root, uri, DAY, promoted_by="execution-1", store=store())
    assert target(champion_uri(root)).read_bytes() == document  # not overwritten


def test_the_manifest_takes_its_numbers_from_the_card_and_its_identity_from_the_folder() -> None:
    published = target(f"s3://{MODELS}/iris/{DAY}/published-abcd/model.pkl")
    found = card(b"x", accuracy=0.9) | {"cv_metrics": {"macro_f1": 0.8, "balanced_accuracy": 0.85}}
    found["training_accuracy"] = 0.99
    result = manifest_for(published, found, run_date=DAY, promoted_by="me", action="manual")
    assert result["identity"] == "published-abcd"  # no publication.identity in this card
    assert result["metrics"] == {
        "cv_accuracy": 0.9,
        "balanced_accuracy": 0.85,
        "macro_f1": 0.8,
        "training_accuracy": 0.99,
        "score": 0.9,  # an older card without "score": its cv_accuracy
        "score_name": "cv_accuracy",
    }
    assert (result["estimator"], result["sha256"], result["action"]) == ("svc", found["model_sha256"], "manual")


# --- S3: the compare-and-swap ------------------------------------------------------------------------------------
PUBLISH = f"s3://{MODELS}/iris"


def test_on_s3_a_champion_changed_between_the_read_and_the_swap_is_decided_on_again(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a champion of the day before, and a promotion of the day that reads it just before another
    # execution promotes the next day's model
    first, mine, theirs = (
        publish_fake(PUBLISH, DAY_BEFORE, "aaaa"),
        publish_fake(PUBLISH, DAY, "bbbb"),
        publish_fake(PUBLISH, NEXT_DAY, "cccc"),
    )
    promote(PUBLISH, first, DAY_BEFORE, promoted_by="execution-1", store=store())
    original = S3Target.read_versioned
    meanwhile: dict[str, Promotion] = {}

    def read_versioned(self: S3Target) -> tuple[bytes | None, str | None]:
        found = original(self)
        if "theirs" not in meanwhile:  # once, after the first read (its own reads come here too)
            meanwhile["theirs"] = Promotion(False, "not yet", None)
            meanwhile["theirs"] = promote(PUBLISH, theirs, NEXT_DAY, promoted_by="execution-3", store=store())
        return found

    monkeypatch.setattr(S3Target, "read_versioned", read_versioned)
    # When its swap (If-Match on the ETag it read) finds the manifest changed
    result = promote(PUBLISH, mine, DAY, promoted_by="execution-2", store=store())
    monkeypatch.undo()
    # Then it read again and refused on the newer champion, which stays, and no write was lost
    assert meanwhile["theirs"].promoted is True
    assert result.promoted is False
    assert result.reason == f"not promoted: the champion published-cccc is of a newer run date ({NEXT_DAY} > {DAY})"
    assert current(PUBLISH)["identity"] == "published-cccc"
    assert current(PUBLISH)["previous"]["identity"] == "published-aaaa"
    assert [entry["identity"] for entry in history(PUBLISH)] == ["published-aaaa", "published-cccc"]


def test_a_champion_that_keeps_changing_is_a_storage_error(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = publish_fake(root, DAY, "aaaa")

    def always_changed(self: Target, data: bytes, version: str | None) -> None:
        raise TargetChangedError("changed")

    monkeypatch.setattr(champion, "CAS_ATTEMPTS", 3)
    monkeypatch.setattr(LocalTarget, "replace_if", always_changed)
    with pytest.raises(StorageError, match=r"it kept changing \(3 attempts\)"):
        promote(root, uri, DAY, promoted_by="execution-1", store=store())
    assert read_champion(root, store=store()) is None
    assert history(root) == []


def test_the_champions_feature_order_survives_its_manifest_so_the_same_schema_is_not_a_change(root: str) -> None:
    # Given a champion whose feature columns are not in alphabetical order (the manifest is written with sorted keys)
    columns = {"input": {"columns": ["z", "a"]}, "dataset": {"resolved": {"kinds": {"z": "numeric", "a": "numeric"}}}}
    first = publish_fake(root, DAY, "aaaa", accuracy=0.8)
    second = publish_fake(root, NEXT_DAY, "bbbb", accuracy=0.9)
    for uri in (first, second):
        card_target = target(uri).sibling(CARD_FILE)
        card_target.write_bytes(json.dumps(json.loads(card_target.read_bytes()) | columns).encode(), overwrite=True)
    promote(root, first, DAY, promoted_by="a", store=store())
    assert current(root)["features"] == [["z", "numeric"], ["a", "numeric"]]
    # When a model with the same columns in the same order comes
    # Then it is promoted: no schema change is seen
    assert promote(root, second, NEXT_DAY, promoted_by="b", store=store()).promoted is True
