"""What a killed run leaves is incomplete everywhere, and the next run of the date completes it.

A model (trained or published) is complete only when ``model.pkl`` is there with a card
(``metrics.json``) that records its sha256. Publishing writes the model first and then the card, as
training does, so a kill between the two leaves a model without its card, never a card without its
model; a lone card (as the old order left one) is incomplete for the plan, the tasks, status, the
report and the champion. Locally a kill leaves a hidden ``.partial`` file (and the folders made for
it): a later write to that folder, or the next run's plan, removes the ones older than an hour, and
nothing reads them meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from mlpipe import artifacts, champion, tasks
from mlpipe.config import Run, Settings, resolve_run
from mlpipe.exceptions import IntegrityError, InvalidRequestError, MissingInputError
from mlpipe.planning import plan_run
from mlpipe.reporting_html import collect_report, render_report
from mlpipe.status import collect_status
from mlpipe.storage import LocalTarget, S3Target, Store, Target
from mlpipe.storage.local import STALE_PARTIAL_SECONDS
from tests.conftest import ARTIFACTS, MODELS

DATE = "2026-11-25"


class Killed(BaseException):
    """The process dies here (a BaseException: nothing catches it on its way out)."""


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings whose roots are in the store named by the parameter."""
    roots = {"artifact_root": str(tmp_path / "artifacts"), "publish_uri": str(tmp_path / "published")}
    if request.param == "s3":
        request.getfixturevalue("aws")
        roots = {"artifact_root": f"s3://{ARTIFACTS}/runs", "publish_uri": f"s3://{MODELS}/iris"}
    return Settings(**roots, allow_local_storage=True, allow_loopback_sources=True)


def trained(http_server: Any, settings: Settings) -> tuple[Run, Store]:
    """A run of DATE whose dataset and model are made (download and train ran), not yet published."""
    store = Store.from_settings(settings)
    run = resolve_run({"run_date": DATE, "source_url": http_server.url()}, settings, store=store)
    assert tasks.download(run, store=store, settings=settings).state == "ran"
    assert tasks.train(run, store=store).state == "ran"
    return run, store


def published_files(store: Store, run: Run) -> dict[str, bool]:
    model = store.target(run.published_uri)
    return {"model.pkl": model.exists(), "metrics.json": model.sibling("metrics.json").exists()}


def status_of(store: Store, run: Run, kind: str) -> list[tuple[str, str]]:
    assert run.publish_root is not None
    found = collect_status(run.dataset_uri.rsplit("/", 3)[0], run.publish_root, store=store)["runs"]
    return [(entry["uri"], entry["state"]) for day in found for entry in day[kind]]


def kill_at_write(monkeypatch: pytest.MonkeyPatch, number: int) -> list[str]:
    """Make the ``number``-th atomic write from now on (either store) die before it commits; the URIs written."""
    written: list[str] = []
    for cls in (LocalTarget, S3Target):
        original = cls.atomic_write

        def dying(self: Target, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            written.append(self.uri)
            if len(written) == number:
                raise Killed
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "atomic_write", dying)
    return written


def test_a_publish_killed_after_its_first_write_leaves_the_model_without_its_card(
    http_server: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, store = trained(http_server, settings)
    # When the upload dies at its second write
    with monkeypatch.context() as patched:
        written = kill_at_write(patched, 2)
        with pytest.raises(Killed):
            tasks.upload(run, store=store)
    # Then the model was written first: what is left is the model without its card, never the reverse
    assert [uri.rsplit("/", 1)[1] for uri in written] == ["model.pkl", "metrics.json"]
    assert published_files(store, run) == {"model.pkl": True, "metrics.json": False}
    assert not artifacts.model_complete(store.target(run.published_uri))
    assert status_of(store, run, "published") == [(store.target(run.published_uri).uri, "incomplete")]
    # And the next run of the date resumes at upload and completes it
    assert plan_run(run, store=store)["start_at"] == "upload"
    tasks.upload(run, store=store)  # "present": the model was there, and only its card was written now
    assert artifacts.model_complete(store.target(run.published_uri))
    assert status_of(store, run, "published") == [(store.target(run.published_uri).uri, "present")]
    assert plan_run(run, store=store)["start_at"] == "promote"


def test_a_lone_card_is_incomplete_everywhere_and_the_next_run_completes_it(
    http_server: Any, settings: Settings
) -> None:
    run, store = trained(http_server, settings)
    assert run.publish_root is not None
    # Given a published card without its model (what a kill left when the card was written first)
    tasks.upload(run, store=store)
    published = store.target(run.published_uri)
    published.delete()
    assert published_files(store, run) == {"model.pkl": False, "metrics.json": True}
    # Then it is incomplete for the plan, status, the report and the champion
    assert not artifacts.model_complete(published)
    assert plan_run(run, store=store)["start_at"] == "upload"
    assert status_of(store, run, "published") == [(published.uri, "incomplete")]
    report = collect_report(run.dataset_uri.rsplit("/", 3)[0], run.publish_root, store=store)
    kinds = {point["uri"]: point["kind"] for point in report["points"]}
    assert kinds[published.uri] == "incomplete"
    page = render_report(report)
    assert f'data-kind="published" data-run-date="{DATE}"' not in page
    assert 'data-kind="incomplete"' not in page  # listed in the table, not drawn as a model
    with pytest.raises(MissingInputError, match="a card without its model is incomplete"):
        champion.promote(run.publish_root, published.uri, DATE, promoted_by="test", store=store)
    with pytest.raises(InvalidRequestError, match="no published model"):
        champion.set_champion(run.publish_root, published.uri, promoted_by="test", store=store)
    assert champion.read_champion(run.publish_root, store=store) is None
    # When the date runs again, the upload completes it, and then it can be promoted
    assert tasks.upload(run, store=store).state == "ran"
    assert artifacts.model_complete(published)
    assert status_of(store, run, "published") == [(published.uri, "present")]
    assert champion.promote(run.publish_root, published.uri, DATE, promoted_by="test", store=store).promoted


@pytest.mark.parametrize(
    "card",
    [
        pytest.param(lambda card: {k: v for k, v in card.items() if k != "model_sha256"}, id="no-sha256"),
        pytest.param(lambda card: [card], id="not-an-object"),
        pytest.param(lambda card: None, id="not-json"),
    ],
)
def test_a_model_whose_card_does_not_record_its_sha256_is_incomplete_until_the_next_run(
    http_server: Any, settings: Settings, card: Any
) -> None:
    run, store = trained(http_server, settings)
    model = store.target(run.model_uri)
    sidecar = model.sibling("metrics.json")
    # Given a trained model whose card does not record the model's sha256
    changed = card(json.loads(sidecar.read_bytes()))
    sidecar.write_bytes(b"{not json" if changed is None else json.dumps(changed).encode(), overwrite=True)
    # Then it is incomplete: for the plan (train again), the train task and status
    assert not artifacts.model_complete(model)
    assert plan_run(run, store=store)["start_at"] == "train"
    assert status_of(store, run, "models") == [(model.uri, "incomplete")]
    # When the date runs again, training completes it: the same model, now described by its card
    stored = model.sha256()
    tasks.train(run, store=store)
    assert artifacts.model_complete(model)
    assert json.loads(sidecar.read_bytes())["model_sha256"] == stored == model.sha256()
    assert status_of(store, run, "models") == [(model.uri, "present")]


def test_a_model_whose_card_records_another_sha256_is_incomplete_and_refused_before_training(
    http_server: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, store = trained(http_server, settings)
    model = store.target(run.model_uri)
    sidecar = model.sibling("metrics.json")
    document = json.loads(sidecar.read_bytes()) | {"model_sha256": "0" * 64}
    sidecar.write_bytes(json.dumps(document).encode(), overwrite=True)
    assert not artifacts.model_complete(model)
    assert plan_run(run, store=store)["start_at"] == "train"
    assert status_of(store, run, "models") == [(model.uri, "incomplete")]
    # The model or its card was replaced: no rerun can tell which, so train refuses it at once, without a fit
    monkeypatch.setattr(tasks, "train_model", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(IntegrityError, match="corrupted or replaced"):
        tasks.train(run, store=store)
    assert json.loads(sidecar.read_bytes())["model_sha256"] == "0" * 64


def test_a_published_model_whose_card_records_another_sha256_is_not_promoted_by_hand(
    http_server: Any, settings: Settings
) -> None:
    run, store = trained(http_server, settings)
    assert run.publish_root is not None
    tasks.upload(run, store=store)
    published = store.target(run.published_uri)
    sidecar = published.sibling("metrics.json")
    document = json.loads(sidecar.read_bytes()) | {"model_sha256": "0" * 64}
    sidecar.write_bytes(json.dumps(document).encode(), overwrite=True)
    assert status_of(store, run, "published") == [(published.uri, "incomplete")]
    with pytest.raises(IntegrityError):
        champion.set_champion(run.publish_root, published.uri, promoted_by="test", store=store)
    with pytest.raises(IntegrityError, match="corrupted or replaced"):
        champion.promote(run.publish_root, published.uri, DATE, promoted_by="test", store=store)
    assert champion.read_champion(run.publish_root, store=store) is None


# --- the hidden .partial files of killed local writes ------------------------------------------------------------
def partial(folder: Path, name: str, *, age: float) -> Path:
    """A hidden spool file as a killed write leaves it (``.<name>.<8 random>.partial``), ``age`` seconds old."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{name}.{hashlib.sha256(f'{name}{age}'.encode()).hexdigest()[:8]}.partial"
    path.write_bytes(b"half")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_a_write_removes_the_stale_partial_files_beside_it_and_keeps_fresh_ones(tmp_path: Path) -> None:
    folder = tmp_path / "published" / DATE / "published-0123456789ab"
    stale = [
        partial(folder, "model.pkl", age=STALE_PARTIAL_SECONDS + 60),
        partial(folder, "metrics.json", age=3 * 86400),
    ]
    fresh = partial(folder, "model.pkl", age=60)  # perhaps a concurrent writer's live spool file
    others = [folder / ".keep", folder / "notes.partial", folder / ".x.partial"]  # not a spool file's name
    for path in others:
        path.write_bytes(b"x")
        os.utime(path, (0, 0))
    store = Store.on_this_machine()
    # Nothing reads them meanwhile: a listing leaves out the hidden files, status has nothing of the pipeline's
    root = str(tmp_path / "published")
    assert [item.relative for item in store.list(root)] == [f"{DATE}/published-0123456789ab/notes.partial"]
    status = collect_status(root, root, store=store)
    assert status["runs"] == []
    assert [entry["relative"] for entry in status["skipped"]] == [f"{DATE}/published-0123456789ab/notes.partial"]
    # When a write goes to that folder
    store.target(str(folder / "champion-note.json")).write_bytes(b"{}")
    # Then the stale spool files are gone, and the fresh one and the other files are kept
    assert not any(path.exists() for path in stale)
    assert fresh.exists()
    assert all(path.exists() for path in others)


def test_a_live_write_survives_a_write_beside_it(tmp_path: Path) -> None:
    folder = tmp_path / "root"
    store = Store.on_this_machine()
    first = store.target(str(folder / "model.pkl"))
    with first.atomic_write() as handle:
        handle.write(b"model")
        spool = [p for p in folder.iterdir() if p.name.endswith(".partial")]
        os.utime(spool[0], (time.time() - 10, time.time() - 10))
        store.target(str(folder / "metrics.json")).write_bytes(b"{}")  # sweeps the folder meanwhile
        assert spool[0].exists()
    assert first.read_bytes() == b"model"


def test_the_next_run_removes_what_killed_local_writes_left(http_server: Any, tmp_path: Path) -> None:
    settings = Settings(
        artifact_root=str(tmp_path / "artifacts"),
        publish_uri=str(tmp_path / "published"),
        allow_local_storage=True,
        allow_loopback_sources=True,
    )
    store = Store.from_settings(settings)
    run = resolve_run({"run_date": DATE, "source_url": http_server.url()}, settings, store=store)
    dataset, published = Path(run.dataset_uri.removeprefix("file://")), Path(run.published_uri.removeprefix("file://"))
    # Given a download killed long ago (its spool file and the folders made for it), and a fresh spool file
    old = partial(dataset.parent, "dataset.csv", age=2 * STALE_PARTIAL_SECONDS)
    live = partial(published.parent, "model.pkl", age=5)
    # When the next run is planned
    assert plan_run(run, store=store)["start_at"] == "download"
    # Then the stale file and the folders left empty are gone; the fresh one stays
    assert not old.exists()
    assert not dataset.parent.exists()
    assert not dataset.parent.parent.exists()
    assert (tmp_path / "artifacts").is_dir()  # the root itself stays
    assert live.exists()
    # And the run goes on as usual
    assert tasks.download(run, store=store, settings=settings).state == "ran"
