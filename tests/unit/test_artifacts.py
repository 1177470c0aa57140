"""A model and its card (mlpipe.artifacts): written together, checked on read (local directories; S3 on moto where
its conditional writes are what is tested)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlpipe.artifacts import (
    CARD_FILE,
    Record,
    check_stored,
    metrics_target,
    model_complete,
    read_checked,
    read_metrics,
    records,
    write_model,
)
from mlpipe.exceptions import IntegrityError
from mlpipe.steps import OUTPUTS
from mlpipe.storage import LocalTarget, Target
from tests.cards import card
from tests.conftest import ARTIFACTS, s3_versions
from tests.stores import target

MODEL_FILE = OUTPUTS["train"].file
KEY = "runs/2026-11-25/model-abcd/"
ONE, TWO = b"model one", b"model two"


@pytest.fixture
def model(tmp_path: Path) -> Target:
    """model.pkl under a fresh local root (nothing written yet)."""
    return target(str(tmp_path / "runs" / "2026-11-25" / "model-abcd" / MODEL_FILE))


@pytest.fixture
def s3_model(aws: Any) -> Target:
    """model.pkl in the (versioned) artifacts bucket on moto (nothing written yet)."""
    return target(f"s3://{ARTIFACTS}/{KEY}{MODEL_FILE}")


def stored_card(model: Target) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(metrics_target(model).read_bytes())
    return found


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The file names ``Target.write_bytes`` is asked to write, in order (whether or not the write succeeds)."""
    written: list[str] = []
    original = Target.write_bytes

    def write_bytes(self: Target, data: bytes, **kwargs: Any) -> None:
        written.append(self.uri.rsplit("/", 1)[-1])
        original(self, data, **kwargs)

    monkeypatch.setattr(Target, "write_bytes", write_bytes)
    return written


def test_the_card_is_metrics_json_beside_the_model() -> None:
    assert (
        metrics_target(target("s3://bucket-a/runs/d/model-x/model.pkl")).uri
        == "s3://bucket-a/runs/d/model-x/metrics.json"
    )
    local = metrics_target(target("/tmp/runs/d/model-x/model.pkl"))
    assert isinstance(local, LocalTarget)
    assert local.uri == "file:///tmp/runs/d/model-x/metrics.json"


def test_write_model_writes_the_model_then_its_card(model: Target, writes: list[str]) -> None:
    assert write_model(model, ONE, card(ONE)) is True
    assert writes == [MODEL_FILE, CARD_FILE]
    assert model.read_bytes() == ONE
    assert stored_card(model) == card(ONE)


def test_a_failed_model_write_leaves_no_card(model: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    class Boom(Exception):
        pass

    original = Target.write_bytes

    def failing(self: Target, data: bytes, **kwargs: Any) -> None:
        if self.uri.endswith(MODEL_FILE):
            raise Boom
        original(self, data, **kwargs)

    monkeypatch.setattr(Target, "write_bytes", failing)
    with pytest.raises(Boom):
        write_model(model, ONE, card(ONE))
    assert not metrics_target(model).exists()  # the model first, then its card: never a card alone


def test_a_second_writer_of_the_same_bytes_reports_it_did_not_write(model: Target, writes: list[str]) -> None:
    assert write_model(model, ONE, card(ONE)) is True
    writes.clear()
    assert write_model(model, ONE, card(ONE) | {"note": "second"}) is False
    assert writes == [MODEL_FILE]  # its conditional write lost; the card already records the model
    assert model.read_bytes() == ONE
    assert stored_card(model) == card(ONE)  # the card recording it already is kept


def test_a_different_model_that_no_card_records_is_an_integrity_error_and_nothing_is_replaced(model: Target) -> None:
    model.write_bytes(TWO)  # say, left by a hand copy, without a card
    with pytest.raises(IntegrityError) as raised:
        write_model(model, ONE, card(ONE))
    message = str(raised.value)
    assert card(TWO)["model_sha256"] in message
    assert card(ONE)["model_sha256"] in message
    assert f"delete {model.uri} and rerun" in message
    assert model.read_bytes() == TWO
    assert not metrics_target(model).exists()


def test_a_different_model_with_a_card_of_a_third_one_is_an_integrity_error_and_the_card_stays(model: Target) -> None:
    model.write_bytes(TWO)
    third = card(b"model three")
    metrics_target(model).write_bytes(json.dumps(third).encode())
    with pytest.raises(IntegrityError, match="does not record the stored one"):
        write_model(model, ONE, card(ONE))
    assert model.read_bytes() == TWO
    assert stored_card(model) == third


def test_a_different_model_described_by_its_own_card_is_left_alone(model: Target) -> None:
    write_model(model, TWO, card(TWO, accuracy=0.8))
    assert write_model(model, ONE, card(ONE)) is False
    assert model.read_bytes() == TWO
    assert stored_card(model) == card(TWO, accuracy=0.8)


def test_a_stale_card_of_a_deleted_model_is_replaced(model: Target) -> None:
    write_model(model, TWO, card(TWO))
    model.delete()  # the user removed only model.pkl
    assert write_model(model, ONE, card(ONE)) is True
    assert model.read_bytes() == ONE
    assert stored_card(model) == card(ONE)


@pytest.mark.parametrize("garbage", [b"not json", b"[1, 2]", b'{"model_sha256": null}'])
def test_an_unreadable_card_is_replaced_too(model: Target, garbage: bytes) -> None:
    metrics_target(model).write_bytes(garbage)
    assert write_model(model, ONE, card(ONE)) is True
    assert stored_card(model) == card(ONE)


def test_on_s3_a_second_writer_of_the_same_model_writes_nothing_and_the_metadata_is_kept(
    aws: Any, s3_model: Target
) -> None:
    assert write_model(s3_model, ONE, card(ONE), metadata={"identity": "model-abcd"}) is True
    assert write_model(s3_model, ONE, card(ONE), metadata={"identity": "model-efgh"}) is False
    assert s3_versions(aws, ARTIFACTS, KEY + MODEL_FILE) == 1
    assert s3_versions(aws, ARTIFACTS, KEY + CARD_FILE) == 1
    assert aws.head_object(Bucket=ARTIFACTS, Key=KEY + MODEL_FILE)["Metadata"] == {"identity": "model-abcd"}


def test_on_s3_a_different_model_no_card_records_is_refused_and_nothing_is_overwritten(
    aws: Any, s3_model: Target
) -> None:
    s3_model.write_bytes(TWO)
    with pytest.raises(IntegrityError, match="does not record the stored one"):
        write_model(s3_model, ONE, card(ONE))
    assert s3_versions(aws, ARTIFACTS, KEY + MODEL_FILE) == 1
    assert s3_model.read_bytes() == TWO
    assert not metrics_target(s3_model).exists()


def test_on_s3_a_stale_card_is_replaced_in_place(aws: Any, s3_model: Target) -> None:
    write_model(s3_model, TWO, card(TWO))
    s3_model.delete()
    assert write_model(s3_model, ONE, card(ONE)) is True
    assert stored_card(s3_model) == card(ONE)
    assert s3_versions(aws, ARTIFACTS, KEY + CARD_FILE) == 2


def test_records_is_true_only_for_a_card_recording_that_sha(model: Target) -> None:
    sidecar = metrics_target(model)
    sha = card(ONE)["model_sha256"]
    assert records(sidecar, sha) is False  # missing
    sidecar.write_bytes(b"[]")
    assert records(sidecar, sha) is False  # not an object
    sidecar.write_bytes(json.dumps(card(TWO)).encode(), overwrite=True)
    assert records(sidecar, sha) is False
    sidecar.write_bytes(json.dumps(card(ONE)).encode(), overwrite=True)
    assert records(sidecar, sha) is True


def test_read_checked_returns_the_bytes_and_the_card_as_read(model: Target) -> None:
    write_model(model, ONE, card(ONE))
    checked = read_checked(model, consequence="it is not published")
    assert (checked.payload, checked.card) == (ONE, card(ONE))
    assert checked.card_bytes == metrics_target(model).read_bytes()


def test_read_checked_refuses_bytes_that_do_not_match_the_cards_sha256(model: Target) -> None:
    write_model(model, ONE, card(ONE))
    model.write_bytes(TWO, overwrite=True)  # replaced after training
    with pytest.raises(IntegrityError) as raised:
        read_checked(model, consequence="it is not published")
    message = str(raised.value)
    assert f"{model.uri} has sha256 {card(TWO)['model_sha256']}" in message
    assert f"records {card(ONE)['model_sha256']}" in message
    assert "it is not published" in message


def test_read_checked_checks_a_stronger_record_first_naming_where_it_is(model: Target) -> None:
    write_model(model, ONE, card(ONE))
    with pytest.raises(IntegrityError) as raised:
        read_checked(model, consequence="it is not loaded", record=Record(card(TWO)["model_sha256"], "champion.json"))
    assert f"but champion.json records {card(TWO)['model_sha256']}" in str(raised.value)
    assert "it is not loaded" in str(raised.value)
    record = Record(card(ONE)["model_sha256"], "champion.json")
    assert read_checked(model, consequence="it is not loaded", record=record).payload == ONE


@pytest.mark.parametrize("recorded", [None, "abc", "A" * 64, 42])
def test_a_record_that_is_no_sha256_is_refused(model: Target, recorded: Any) -> None:
    write_model(model, ONE, card(ONE))
    with pytest.raises(IntegrityError, match=r"champion\.json records no valid sha256"):
        read_checked(model, consequence="it is not loaded", record=Record(recorded, "champion.json"))


def test_check_stored_returns_the_card_of_matching_bytes_and_refuses_others(model: Target) -> None:
    write_model(model, ONE, card(ONE))
    assert check_stored(model, consequence="it is not promoted") == card(ONE)
    model.write_bytes(TWO, overwrite=True)
    with pytest.raises(IntegrityError, match=f"has sha256 {card(TWO)['model_sha256']}.*it is not promoted"):
        check_stored(model, consequence="it is not promoted")
    model.delete()
    with pytest.raises(IntegrityError, match=r"is missing \(its card is there\) and it is not promoted"):
        check_stored(model, consequence="it is not promoted")


def test_a_card_that_is_not_strict_json_is_refused_before_anything_is_written(model: Target) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_model(model, ONE, card(ONE, accuracy=float("nan")))
    assert not model.exists()
    assert not metrics_target(model).exists()


def test_read_metrics_refuses_a_missing_card_naming_it(model: Target) -> None:
    model.write_bytes(ONE)
    with pytest.raises(IntegrityError, match=f"{metrics_target(model).uri} is missing"):
        read_checked(model, consequence="it is not published")


@pytest.mark.parametrize("garbage", [b"not json", b"[1, 2]", b'{"model_sha256": 3}'])
def test_read_metrics_refuses_an_invalid_card(model: Target, garbage: bytes) -> None:
    metrics_target(model).write_bytes(garbage)
    with pytest.raises(IntegrityError, match="is not a valid metrics file"):
        read_metrics(model)


@pytest.mark.parametrize(
    ("written", "complete"),
    [((), False), ((MODEL_FILE,), False), ((CARD_FILE,), False), ((MODEL_FILE, CARD_FILE), True)],
)
def test_a_model_is_complete_only_with_a_card_recording_its_bytes(
    model: Target, written: tuple[str, ...], complete: bool
) -> None:
    for name in written:
        model.sibling(name).write_bytes(ONE if name == MODEL_FILE else json.dumps(card(ONE)).encode())
    assert model_complete(model) is complete
    if complete:  # a card that records other bytes does not complete it
        metrics_target(model).write_bytes(json.dumps(card(b"other bytes")).encode(), overwrite=True)
        assert model_complete(model) is False
