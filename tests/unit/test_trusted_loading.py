"""Every path that loads (or hands over) a model checks its bytes against the strongest record before unpickling.

The hostile model is a pickle whose ``__reduce__`` touches a marker file when it is unpickled: the
marker's absence shows that nothing of it ran. It is planted the way an attacker with write access to
a model's folder would: model.pkl replaced and its card (metrics.json) rewritten to record its sha256,
so the card alone no longer tells it apart; only the champion manifest (written by promote) does.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import pickle
from pathlib import Path
from typing import Any

import pytest
import sklearn

from mlpipe import champion, loading
from mlpipe.exceptions import IntegrityError, InvalidRequestError, NoChampionError
from mlpipe.predicting import predict_file
from mlpipe.reporting_html import collect_report
from mlpipe.sagemaker_job import main
from mlpipe.storage import Store
from tests.unit.test_sagemaker import SAMPLE, _container

DATE = "2026-11-25"
IDENTITY = "published-0123456789ab"


class Planted:
    """Unpickling this runs ``Path.touch(marker)``: the stand-in for any code a pickle can run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (pathlib.Path.touch, (self.marker,))


def card_for(payload: bytes) -> dict[str, Any]:
    """A card that records ``payload``'s sha256 and this environment's scikit-learn (so that check passes too)."""
    return {
        "model_sha256": hashlib.sha256(payload).hexdigest(),
        "versions": {"scikit_learn": sklearn.__version__},
        "scikit_learn_version": sklearn.__version__,
        "classes": ["a", "b"],
        "cv_accuracy": {"mean": 0.9},
    }


def write_model(folder: Path, payload: bytes, card: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pkl").write_bytes(payload)
    (folder / "metrics.json").write_text(json.dumps(card or card_for(payload)))
    return folder / "model.pkl"


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "code-ran"


@pytest.fixture
def hostile(marker: Path) -> bytes:
    payload = pickle.dumps(Planted(marker))
    pickle.loads(payload)  # the payload really does run code when unpickled:
    assert marker.exists()
    marker.unlink()
    return payload


@pytest.fixture
def publish(tmp_path: Path) -> Path:
    """Model iris's published location (under the publish root ``published``) whose champion is an honest model
    (a plain dict, pickled), promoted by the pipeline."""
    root = tmp_path / "published" / "iris"
    model = write_model(root / DATE / IDENTITY, pickle.dumps({"an": "honest model"}))
    champion.promote(str(root), str(model), DATE, promoted_by="test", store=Store.on_this_machine())
    return root


def plant(publish: Path, hostile: bytes) -> Path:
    """Replace the champion's model by ``hostile``, with a card recording its sha256 (the card now agrees)."""
    return write_model(publish / DATE / IDENTITY, hostile)


def test_load_champion_checks_the_manifest_before_unpickling(publish: Path, hostile: bytes, marker: Path) -> None:
    plant(publish, hostile)
    with pytest.raises(IntegrityError, match=r"champion\.json records") as raised:
        loading.load_champion(str(publish.parent), store=Store.on_this_machine())
    assert not marker.exists()
    assert str(publish / "champion.json") in str(raised.value)


def test_predict_checks_the_manifest_before_unpickling(
    publish: Path, hostile: bytes, marker: Path, tmp_path: Path
) -> None:
    plant(publish, hostile)
    rows = tmp_path / "rows.csv"
    rows.write_text("1,2\n")
    with pytest.raises(IntegrityError, match=r"champion\.json records"):
        predict_file(rows, publish_uri=str(publish), store=Store.on_this_machine())
    assert not marker.exists()


def test_load_champion_refuses_a_card_that_disagrees_with_the_manifest(publish: Path, marker: Path) -> None:
    # The bytes are the champion's, but its card was rewritten (to change what the model is said to be)
    folder = publish / DATE / IDENTITY
    card = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps(card | {"model_sha256": "0" * 64}))
    with pytest.raises(IntegrityError, match="card"):
        loading.load_champion(str(publish.parent), store=Store.on_this_machine())


@pytest.mark.parametrize("recorded", [None, 5, "not-a-digest", ""])
def test_a_manifest_without_a_valid_sha256_loads_nothing(
    publish: Path, hostile: bytes, marker: Path, recorded: Any
) -> None:
    plant(publish, hostile)
    manifest = json.loads((publish / "champion.json").read_text())
    (publish / "champion.json").write_text(json.dumps(manifest | {"sha256": recorded}))
    with pytest.raises(IntegrityError, match=r"champion\.json"):
        loading.load_champion(str(publish.parent), store=Store.on_this_machine())
    assert not marker.exists()


def test_load_model_refuses_bytes_its_card_does_not_record(tmp_path: Path, hostile: bytes, marker: Path) -> None:
    model = write_model(tmp_path / "m", hostile, card_for(b"another model"))
    with pytest.raises(IntegrityError, match="its card"):
        loading.load_model(str(model), store=Store.on_this_machine())
    assert not marker.exists()


def test_the_checked_bytes_are_the_unpickled_bytes(publish: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A second read of model.pkl (after the check) would see what an attacker swapped in meanwhile: there is none.
    reads: list[str] = []
    original = Store.target

    def counting(self: Store, uri: str) -> Any:
        target = original(self, uri)
        if uri.endswith("model.pkl"):
            opened = target.open_read

            def open_read() -> Any:
                reads.append(uri)
                return opened()

            monkeypatch.setattr(target, "open_read", open_read)
        return target

    monkeypatch.setattr(Store, "target", counting)
    model, _ = loading.load_champion(str(publish.parent), store=Store.on_this_machine())
    assert model == {"an": "honest model"}
    assert len(reads) == 1


def test_no_champion_is_its_own_error_saying_how_to_get_one(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("1,2\n")
    for call in (
        lambda: loading.load_champion(str(tmp_path / "published"), store=Store.on_this_machine()),
        lambda: predict_file(rows, publish_uri=str(tmp_path / "published"), store=Store.on_this_machine()),
    ):
        with pytest.raises(NoChampionError, match=r"there is no champion at .*pipeline promote") as raised:
            call()
        assert isinstance(raised.value, InvalidRequestError)
        assert not isinstance(raised.value, IntegrityError)


# --- the other paths that read a model -----------------------------------------------------------
def test_promote_refuses_a_published_model_its_card_does_not_record(tmp_path: Path) -> None:
    root = tmp_path / "published"
    model = write_model(root / DATE / IDENTITY, b"replaced", card_for(b"the published model"))
    store = Store.on_this_machine()
    for promote in (
        lambda: champion.promote(str(root), str(model), DATE, promoted_by="test", store=store),
        lambda: champion.set_champion(str(root), str(model), promoted_by="operator", store=store),
    ):
        with pytest.raises(IntegrityError, match="is not made the champion"):
            promote()
    assert not (root / "champion.json").exists()


def test_rollback_refuses_a_previous_champion_whose_model_was_replaced(
    publish: Path, hostile: bytes, marker: Path
) -> None:
    store = Store.on_this_machine()
    newer = write_model(publish / "2026-11-26" / "published-ba9876543210", pickle.dumps({"a": "newer model"}))
    assert champion.promote(str(publish), str(newer), "2026-11-26", promoted_by="test", store=store).promoted
    before = (publish / "champion.json").read_bytes()
    plant(publish, hostile)  # the previous champion's folder
    with pytest.raises(IntegrityError, match=r"the previous champion in .*champion\.json records"):
        champion.rollback(str(publish), promoted_by="operator", store=store)
    assert (publish / "champion.json").read_bytes() == before
    assert not marker.exists()


def test_the_report_shows_a_champion_whose_model_is_not_the_manifests_as_an_integrity_error(
    publish: Path, hostile: bytes, tmp_path: Path
) -> None:
    plant(publish, hostile)
    (tmp_path / "artifacts").mkdir()
    report = collect_report(str(tmp_path / "artifacts"), str(publish), store=Store.on_this_machine())
    assert report["card"] is None
    assert report["card_error"].startswith("IntegrityError: ")
    assert "champion.json records" in report["card_error"]


def test_the_sagemaker_hand_over_refuses_a_model_its_card_does_not_record(aws: Any, tmp_path: Path) -> None:
    # (aws: the job looks for the dataset's lineage.json in S3, here moto's)
    # Given a model target that is complete, but whose model.pkl was replaced after training
    args, env, model = _container(tmp_path, SAMPLE.read_bytes())
    assert main(args, env=env) == 0
    handed = tmp_path / "opt" / "model"
    for name in ("model.pkl", "metrics.json"):
        (handed / name).unlink()
    model.write_bytes(b"replaced")
    # When a job finds it complete, then it hands nothing over and says why
    assert main(args, env=env) == 1
    assert (tmp_path / "opt" / "output" / "failure").read_text().startswith("IntegrityError: ")
    assert not (handed / "model.pkl").exists()
    assert not (handed / "metrics.json").exists()
