"""The data contract through the real ASL on moto: the champion's contract refuses a changed dataset in the
download (nothing written, the champion unchanged), records an accepted change and keeps it from promotion,
and measures drift, which max_drift turns into a rejection by the gate."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlpipe.champion import read_champion
from mlpipe.contract import contract_for
from mlpipe.naming import model_location
from pipeline_local.cli.runs import format_summary
from pipeline_local.runner import LocalPipeline
from tests.conftest import SAMPLE
from tests.integration.conftest import states
from tests.stores import store, target

Input = Callable[..., dict[str, Any]]
NEXT = "2026-11-26"


def iris(change: Callable[[list[str]], list[str]]) -> bytes:
    """The bundled Iris sample with ``change`` applied to each row's cells."""
    rows = [line.split(",") for line in SAMPLE.read_text().splitlines() if line.strip()]
    return ("\n".join(",".join(change(cells)) for cells in rows) + "\n").encode()


def serve(http_server: Any, name: str, body: bytes) -> str:
    (http_server.root / name).write_bytes(body)
    return str(http_server.url(f"/{name}"))


@pytest.fixture(params=["s3", "local"])
def roots(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "s3":
        return {}
    return {"artifact_root": str(tmp_path / "artifacts"), "publish_uri": str(tmp_path / "published")}


def test_a_dataset_with_a_changed_column_fails_in_download_with_nothing_written_and_the_champion_unchanged(
    pipeline: LocalPipeline, run_input: Input, http_server: Any, roots: dict[str, str]
) -> None:
    # Given a champion trained on Iris, whose contract is beside it
    first = pipeline.run(run_input(**roots))
    assert first["champion"]["promoted"] is True, first
    publish_uri = model_location(run_input(**roots)["publish_uri"], "iris")  # the default model's location
    before = read_champion(publish_uri, store=store())
    assert before is not None
    assert contract_for(publish_uri, before, store=store())[0] is not None
    # When the next day's file has a fifth feature column (before the label)
    url = serve(http_server, "extra.csv", iris(lambda cells: [*cells[:-1], "7", cells[-1]]))
    refused = pipeline.run(run_input(run_date=NEXT, source_url=url, source_id="test:extra", **roots))
    # Then the download refuses it, naming the difference and what to do, and nothing is written anywhere
    assert refused["status"] == "FAILED"
    assert (refused["error"]["task"], refused["error"]["type"]) == ("download", "SchemaChangedError")
    message = refused["error"]["message"]
    assert "column 'column_4' is new" in message
    assert "the label column is 'column_5'; the contract's is 'column_4'" in message
    assert "on_schema_change=accept" in message
    dataset = target(refused["tasks"]["download"]["target"])
    assert not dataset.exists()
    assert list(store().list(dataset.uri.rsplit("/", 2)[0])) == []  # nothing under the run date: no partial either
    assert read_champion(publish_uri, store=store()) == before
    # When the file lacks one class of the champion's label set: refused at its end, in the download, as the gate would
    lines = [line for line in SAMPLE.read_text().splitlines() if line.strip() and "virginica" not in line]
    url = serve(http_server, "lost.csv", ("\n".join(lines) + "\n").encode())
    lost = pipeline.run(run_input(run_date=NEXT, source_url=url, source_id="test:lost", **roots))
    assert (lost["error"]["task"], lost["error"]["type"]) == ("download", "SchemaChangedError"), lost
    assert "no row has the class(es) Iris-virginica of the contract's label set" in lost["error"]["message"]
    assert not target(lost["tasks"]["download"]["target"]).exists()
    assert read_champion(publish_uri, store=store()) == before


def test_an_accepted_schema_change_is_recorded_published_and_not_promoted(
    pipeline: LocalPipeline, run_input: Input, http_server: Any
) -> None:
    first = pipeline.run(run_input())
    before = read_champion(model_location(run_input()["publish_uri"], "iris"), store=store())
    # When a new label appears and the run accepts schema changes
    url = serve(http_server, "label.csv", iris(lambda c: [*c[:-1], "Iris-new" if c[0] == "5.0" else c[-1]]))
    accepted = pipeline.run(run_input(run_date=NEXT, source_url=url, source_id="test:label", on_schema_change="accept"))
    # Then it is trained and published, the card records the change, and the champion stays
    assert accepted["status"] == "SUCCEEDED", accepted
    assert accepted["champion"]["promoted"] is False
    assert "label 'Iris-new' at line 5 is not in the contract's label set" in accepted["champion"]["reason"]
    card = json.loads(target(accepted["tasks"]["upload"]["target"]).sibling("metrics.json").read_bytes())
    assert card["schema_change"]["policy"] == "accept"
    assert card["schema_change"]["unknown_labels"] == {"Iris-new": 10}
    assert read_champion(model_location(run_input()["publish_uri"], "iris"), store=store()) == before
    assert first["champion"]["promoted"] is True


def test_drift_is_recorded_and_over_max_drift_the_gate_rejects_naming_the_features(
    pipeline: LocalPipeline, run_input: Input, http_server: Any
) -> None:
    pipeline.run(run_input())
    # When the sepal length is 1.5 cm longer the next day, under max_drift 0.25
    url = serve(http_server, "shift.csv", iris(lambda c: [f"{float(c[0]) + 1.5:.1f}", *c[1:]]))
    shifted = run_input(run_date=NEXT, source_url=url, source_id="test:shift")
    rejected = pipeline.run(shifted | {"max_drift": 0.25})
    # Then the gate rejects it, naming the feature and its PSI; the card has the drift per feature
    assert (rejected["error"]["task"], rejected["error"]["type"]) == ("gate", "ModelRejectedError"), rejected
    assert "more than max_drift 0.2500 on 'column_0' (psi " in rejected["error"]["message"]
    card = json.loads(target(rejected["tasks"]["train"]["target"]).sibling("metrics.json").read_bytes())
    features = card["drift"]["features"]
    assert features["column_0"]["value"] > 1.0
    assert max(features[name]["value"] for name in ("column_1", "column_2", "column_3")) < 0.01
    # When max_drift is off (the default): published without retraining, promoted, and the contract follows it
    published = pipeline.run(shifted)
    assert published["status"] == "SUCCEEDED", published
    assert states(published) == {"download": "present", "train": "present", "upload": "ran"}
    assert published["champion"]["promoted"] is True
    top = {"feature": "column_0", "measure": "psi", "value": features["column_0"]["value"]}
    assert published["gate"]["drift"] == top
    assert re.search(r"\n  drift: +largest psi \d+\.\d{4} on 'column_0'", format_summary(published))
    publish_uri = model_location(run_input()["publish_uri"], "iris")
    contract, _ = contract_for(publish_uri, read_champion(publish_uri, store=store()), store=store())
    assert contract is not None
    assert contract["champion"]["identity"] == published["champion"]["identity"]
    assert contract["columns"]["column_0"]["min"] == pytest.approx(4.3 + 1.5)
