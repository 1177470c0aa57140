"""An entry under a root that the pipeline did not make is skipped, and said so: it never breaks the whole root.

Strays: a copied folder (``published-… copy``), a file at the wrong depth, a folder that is not a run
date, a file the pipeline does not write, S3 keys with ``#``, ``?`` or an empty segment, a card that
is not a card, and anything in ``champion-history/`` that is not a history entry. ``status``,
``report``, ``champion`` and ``promote`` list what is the pipeline's and name what they skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlpipe import champion
from mlpipe.config import Settings, resolve_run
from mlpipe.planning import promotion_due
from mlpipe.reporting_html import collect_report, render_report, write_report
from mlpipe.status import collect_status, format_status
from mlpipe.storage import Store
from tests.cli import pipeline
from tests.conftest import ARTIFACTS, MODELS

DATE = "2026-01-01"
PUBLISHED = "published-0123456789ab"
MODEL = "model-0123456789ab"


def card(payload: bytes, **extra: Any) -> bytes:
    document = {
        "model_sha256": hashlib.sha256(payload).hexdigest(),
        "cv_accuracy": {"mean": 0.9},
        "estimator": {"name": "svc", "non_default_hyperparameters": {}},
        "classes": ["a", "b"],
        "lineage": {"created_at": "2026-01-01T00:00:00+00:00", "inputs": {"dataset": "dataset-0123456789ab"}},
        "publication": {"created_at": "2026-01-01T00:00:00+00:00", "identity": PUBLISHED, "inputs": {"model": MODEL}},
    } | extra
    return json.dumps(document).encode()


def put_model(store: Store, root: str, *parts: str, payload: bytes = b"model bytes") -> str:
    """A model.pkl and its card under ``root/parts``; the model's URI."""
    model = store.target(store.join(root, *parts, "model.pkl"))
    model.write_bytes(payload)
    model.sibling("metrics.json").write_bytes(card(payload))
    return model.uri


@pytest.fixture(params=["local", "s3"])
def roots(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """An artifact root and a publish root, in the store named by the parameter."""
    if request.param == "local":
        yield str(tmp_path / "artifacts"), str(tmp_path / "published")
    else:
        request.getfixturevalue("aws")
        yield f"s3://{ARTIFACTS}/runs", f"s3://{MODELS}/iris"


def strays(store: Store, artifacts: str, published: str) -> set[str]:
    """Write a stray of each kind under both roots; their URIs."""
    written = set()

    def stray(root: str, relative: str, data: bytes = b"x") -> None:
        target = store.target(store.join(root, relative))
        target.write_bytes(data)
        written.add(target.uri)

    stray(published, f"{DATE}/{PUBLISHED} copy/model.pkl", b"model bytes")
    stray(published, f"{DATE}/{PUBLISHED} copy/metrics.json", card(b"model bytes"))
    stray(published, f"{DATE}/notes.txt")
    stray(published, "notes.txt")
    stray(published, f"{DATE}/{PUBLISHED}/old/model.pkl")
    stray(published, f"{DATE}/{PUBLISHED}/notes.txt")
    stray(published, f"backup/{PUBLISHED}/model.pkl")
    stray(published, f"2026-13-45/{PUBLISHED}/model.pkl")
    stray(published, f"{DATE}/published-XYZ/metrics.json", b"[1, 2]")
    stray(published, f"{DATE}/something-0123456789ab/metrics.json", b'{"cv_accuracy": 5}')
    stray(artifacts, f"{DATE}/{PUBLISHED}/model.pkl")  # a published model's folder under the artifact root
    stray(artifacts, f"{DATE}/{MODEL} (1)/metrics.json", b'{"cv_accuracy": "high", "estimator": "svc"}')
    stray(artifacts, f"{DATE}/dataset-0123456789ab/dataset.csv.bak")
    stray(artifacts, f"{DATE}/{MODEL}#1/model.pkl")
    stray(artifacts, f"{DATE}/{MODEL}?v=2/model.pkl")
    stray(published, "champion-history/notes.txt")
    stray(published, "champion-history/old/20260101T000000.000000Z-published-0123456789ab-abcdef.json")
    stray(published, "champion-history/20260101T000000.000000Z-x-abcdef.json", b"not json")
    return written


def test_status_skips_what_is_not_the_pipelines_and_names_it(
    roots: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    store = Store.on_this_machine()
    artifacts, published = roots
    # Given a model and its published copy, and strays of every kind beside them
    model = put_model(store, artifacts, DATE, MODEL)
    published_model = put_model(store, published, DATE, PUBLISHED)
    written = strays(store, artifacts, published)
    # When the status is collected
    with caplog.at_level(logging.WARNING):
        status = collect_status(artifacts, published, store=store)
    # Then it lists exactly the pipeline's entries
    assert [run["run_date"] for run in status["runs"]] == [DATE]
    run = status["runs"][0]
    assert [(e["uri"], e["state"]) for e in run["models"]] == [(model, "present")]
    assert [(e["uri"], e["state"], e["newest"]) for e in run["published"]] == [(published_model, "present", True)]
    assert run["datasets"] == []
    # And it names each stray it skipped (champion-history/ is the history's to check), once, with why
    history = {uri for uri in written if "/champion-history/" in uri}
    skipped = status["skipped"]
    assert {entry["uri"] for entry in skipped} == written - history
    assert len(skipped) == len(written - history)
    assert all(entry["reason"] for entry in skipped)
    # And says so: a warning naming what was skipped, and a line of the text form
    warning = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert f"skipped {len(skipped)} entries" in warning
    assert f"{PUBLISHED} copy" in warning
    text = format_status(status)
    assert f"skipped {len(skipped)} entries that are not the pipeline's" in text
    assert f"{PUBLISHED} copy/model.pkl" in text


def test_a_date_range_still_skips_strays_and_reads_only_its_dates(roots: tuple[str, str]) -> None:
    store = Store.on_this_machine()
    artifacts, published = roots
    put_model(store, published, DATE, PUBLISHED)
    put_model(store, published, "2026-01-02", PUBLISHED)
    strays(store, artifacts, published)
    status = collect_status(artifacts, published, first="2026-01-02", last="2026-01-02", store=store)
    assert [run["run_date"] for run in status["runs"]] == ["2026-01-02"]
    assert status["skipped"]


def test_status_of_one_root_given_twice_skips_its_strays_once(tmp_path: Path) -> None:
    # pipeline promote reads the publish root as both roots
    store = Store.on_this_machine()
    root = str(tmp_path / "published")
    put_model(store, root, DATE, PUBLISHED)
    store.target(store.join(root, DATE, "x", "model.pkl")).write_bytes(b"x")
    store.target(store.join(root, "champion.json")).write_bytes(b"{}")  # the pipeline's: not a stray
    status = collect_status(root, root, store=store)
    assert [len(run["published"]) for run in status["runs"]] == [1]
    assert [e["uri"] for e in status["skipped"]] == [store.join(root, DATE, "x", "model.pkl")]


def test_a_publish_root_inside_the_artifact_root_is_not_a_stray_of_it(tmp_path: Path) -> None:
    store = Store.on_this_machine()
    artifacts, published = str(tmp_path / "root"), str(tmp_path / "root" / "published")
    put_model(store, artifacts, DATE, MODEL)
    put_model(store, published, DATE, PUBLISHED)
    status = collect_status(artifacts, published, store=store)
    assert status["skipped"] == []
    assert [len(status["runs"][0][kind]) for kind in ("models", "published")] == [1, 1]


def promoted(store: Store, published: str) -> str:
    uri = put_model(store, published, DATE, PUBLISHED)
    champion.set_champion(published, uri, promoted_by="test", store=store)
    return uri


def test_the_champion_history_skips_what_is_not_a_history_entry(
    roots: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    store = Store.on_this_machine()
    artifacts, published = roots
    promoted(store, published)
    written = strays(store, artifacts, published)
    with caplog.at_level(logging.WARNING):
        history = champion.champion_history(published, store=store)
    assert [entry["identity"] for entry in history] == [PUBLISHED]
    warning = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for uri in written:
        if "/champion-history/" in uri:
            assert uri.rsplit("/", 1)[1] in warning


def test_the_report_skips_strays_and_says_so(roots: tuple[str, str], tmp_path: Path) -> None:
    store = Store.on_this_machine()
    artifacts, published = roots
    uri = promoted(store, published)
    put_model(store, artifacts, DATE, MODEL)
    strays(store, artifacts, published)
    report = collect_report(artifacts, published, store=store)
    assert sorted((p["identity"], p["kind"]) for p in report["points"]) == [(PUBLISHED, "champion")]
    assert [entry["model_uri"] for entry in report["history"]] == [uri]
    assert report["skipped"]
    page = render_report(report)
    assert 'id="skipped"' in page
    assert f"{PUBLISHED} copy/model.pkl" in page
    counts = write_report(tmp_path / "report.html", artifact_root=artifacts, publish_uri=published, store=store)
    assert counts["models"] == 1


def test_promotion_due_reads_only_history_entries(tmp_path: Path) -> None:
    # A stray whose name merely contains the identity is not a decision about the champion
    store = Store.on_this_machine()
    settings = Settings(artifact_root=str(tmp_path / "artifacts"), publish_uri=str(tmp_path / "published"))
    run = resolve_run({"run_date": DATE, "source_url": "https://example.org/iris.data"}, settings, store=store)
    identity = run.published_uri.rsplit("/", 2)[-2]
    assert run.publish_root is not None
    put_model(store, run.publish_root, DATE, identity)
    store.target(store.join(run.publish_root, "champion-history", f"notes-{identity}-.txt")).write_bytes(b"x")
    store.target(store.join(run.publish_root, "champion-history", f"x-{identity}-y.json")).write_bytes(b"x")
    assert promotion_due(run, store=store)


def test_pipeline_promote_and_champion_work_beside_strays(tmp_path: Path) -> None:
    store = Store.on_this_machine()
    published = str(tmp_path / "published")
    put_model(store, f"{published}/iris", DATE, PUBLISHED)  # model iris's published location
    strays(store, str(tmp_path / "artifacts"), f"{published}/iris")
    result = pipeline("promote", "--run-date", DATE, "--publish-uri", published, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["champion"]["identity"] == PUBLISHED
    assert [entry["action"] for entry in shown["history"]] == ["manual"]
    assert "skipped" in result.stderr
    assert f"{PUBLISHED} copy" in result.stderr
    artifacts = str(tmp_path / "artifacts")
    status = pipeline("status", "--publish-uri", published, "--artifact-root", artifacts, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "skipped" in status.stdout


def test_a_card_or_a_history_entry_with_fields_of_the_wrong_type_breaks_nothing(
    roots: tuple[str, str], tmp_path: Path
) -> None:
    store = Store.on_this_machine()
    artifacts, published = roots
    uri = promoted(store, published)
    # Given cards, by the pipeline's names, whose fields have the wrong types
    hostile = {
        "cv_accuracy": {"mean": "high"},
        "estimator": {"name": {"x": 1}, "non_default_hyperparameters": ["C", 1]},
        "publication": {"created_at": 5, "inputs": {"model": {"not": "hashable"}}},
        "lineage": {"created_at": ["x"], "inputs": {"dataset": [1]}},
    }
    for root, folder in ((published, "published-00000000000a"), (artifacts, "model-00000000000b")):
        model = store.target(store.join(root, DATE, folder, "model.pkl"))
        model.write_bytes(b"m")
        model.sibling("metrics.json").write_bytes(card(b"m", **hostile))
    lineage = store.target(store.join(artifacts, DATE, "dataset-00000000000c", "lineage.json"))
    lineage.write_bytes(json.dumps({"created_at": 7, "inputs": {"source": ["x"]}}).encode())
    # and history entries, by the history's names, that are not manifests of the champion
    for number, manifest in enumerate(
        [{"model_uri": uri, "identity": PUBLISHED, "promoted_at": 5}, {"model_uri": uri, "metrics": [1]}]
    ):
        name = f"20260101T00000{number}.000000Z-{PUBLISHED}-abcdef.json"
        store.target(store.join(published, "champion-history", name)).write_bytes(json.dumps(manifest).encode())
    # Then status, the history and the report still read, and show what they can
    status = collect_status(artifacts, published, store=store)
    entries = {e["identity"]: e for run in status["runs"] for kind in ("models", "published") for e in run[kind]}
    assert entries["published-00000000000a"]["state"] == "present"
    assert entries["published-00000000000a"]["cv_accuracy"] is None
    assert isinstance(entries["published-00000000000a"]["made"], str)
    assert entries["model-00000000000b"]["hyperparameters"] is None
    assert "published-00000000000a" in format_status(status)
    history, skipped = champion.read_history(published, store=store)
    assert [entry["action"] for entry in history] == ["manual"]
    assert len(skipped) == 2
    assert write_report(tmp_path / "r.html", artifact_root=artifacts, publish_uri=published, store=store)["models"] >= 2
