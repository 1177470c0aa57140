"""The data contract (mlpipe.contract): the sketch while streaming, the checks, drift, and the contract beside the
champion (written at every change of champion, checked against the sha256 the manifest records)."""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from mlpipe.champion import promote, read_champion, rollback, set_champion
from mlpipe.config import Run
from mlpipe.contract import (
    CATEGORY_CAP,
    RESERVOIR_ROWS,
    DataWatch,
    contract_document,
    contract_for,
    contract_uri,
    promotion_block,
    write_profile,
)
from mlpipe.dataset import validate_dataset
from mlpipe.description import DatasetDescription
from mlpipe.exceptions import IntegrityError, SchemaChangedError
from mlpipe.fetch import DownloadProgress, FetchPolicy, store_stream
from mlpipe.gate import drift_rule
from mlpipe.naming import model_location
from mlpipe.tasks import data_sections
from pipeline_local.cli import main
from tests.cards import publish_fake
from tests.stores import store, target

DAY, NEXT_DAY = "2026-11-25", "2026-11-26"


def table(
    rows: int = 300, *, seed: int = 0, shift: float = 0.0, colours: tuple[str, ...] = ("red", "green", "blue")
) -> list[dict[str, Any]]:
    """Rows of a small mixed dataset: two numeric features, one categorical, a label."""
    rand = random.Random(seed)
    return [
        {
            "width": round(rand.gauss(10 + shift, 2), 3),
            "height": rand.randint(1, 50),
            "colour": rand.choice(colours),
            "kind": rand.choice(["cat", "dog"]),
        }
        for _ in range(rows)
    ]


def csv(rows: list[dict[str, Any]], columns: list[str] | None = None) -> bytes:
    columns = columns or list(rows[0])
    lines = [",".join(columns)] + [",".join(str(row[c]) for c in columns) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def watched(body: bytes, contract: dict[str, Any] | None = None, policy: str = "fail") -> DataWatch:
    watch = DataWatch("test.csv", DatasetDescription().na_values, contract, "contract.json", policy)
    validate_dataset([body], "test.csv", DatasetDescription(header="true"), watch=watch)
    return watch


def contract_of(body: bytes, classes: tuple[str, ...] = ("cat", "dog")) -> dict[str, Any]:
    profile = watched(body).profile()
    # The card's input columns are the model's column order (the file's): the profile's keys, in memory
    card = {"data_profile": profile, "classes": list(classes), "input": {"columns": list(profile["columns"])}}
    contract = contract_document({"identity": "published-champ", "model_uri": "m", "sha256": "s"}, card)
    assert contract is not None
    return contract


BASE = csv(table())


def test_the_profile_has_exact_ranges_deciles_and_category_frequencies() -> None:
    rows = table()
    profile = watched(csv(rows)).profile()
    width = profile["columns"]["width"]
    assert width["kind"] == "numeric"
    assert (width["min"], width["max"]) == (min(r["width"] for r in rows), max(r["width"] for r in rows))
    assert width["quantiles"][0] == width["min"]
    assert width["quantiles"][-1] == width["max"]
    assert width["quantiles"] == sorted(width["quantiles"])
    assert sum(width["bins"]["shares"]) == pytest.approx(1.0, abs=1e-5)
    colour = profile["columns"]["colour"]
    assert colour["kind"] == "categorical"
    counts = {c: sum(r["colour"] == c for r in rows) / len(rows) for c in ("red", "green", "blue")}
    assert colour["categories"] == pytest.approx(counts, abs=1e-6)
    assert profile["label"]["values"] == ["cat", "dog"]
    assert profile["rows"] == 300


def test_the_sketch_is_bounded_and_the_same_file_gives_the_same_sample() -> None:
    rows = [{"x": i, "code": f"c{i}", "y": "ab"[i % 2]} for i in range(RESERVOIR_ROWS * 3)]
    first, second = watched(csv(rows)), watched(csv(rows))
    assert len(first.sample.rows) == RESERVOIR_ROWS
    assert first.sample.rows == second.sample.rows
    assert first.profile()["columns"]["code"] == {
        "kind": "categorical",
        "missing": 0,
        "categories": None,
        "capped": True,
    }
    assert first.profile()["columns"]["x"]["max"] == RESERVOIR_ROWS * 3 - 1
    deciles = first.profile()["columns"]["x"]["quantiles"]
    assert deciles[5] == pytest.approx(RESERVOIR_ROWS * 1.5, rel=0.1)  # a uniform sample: the median near the middle
    assert CATEGORY_CAP < RESERVOIR_ROWS * 3


@pytest.mark.parametrize(
    ("columns", "change", "named"),
    [
        (["width", "height", "colour", "size", "kind"], "extra column", "'size' is new"),
        (["width", "colour", "kind"], "missing column", "'height' (numeric) is missing"),
        (
            ["height", "width", "colour", "kind"],
            "column order",
            "the feature columns' order changes: the contract's is 'width', 'height', 'colour', the file's is "
            "'height', 'width', 'colour'",
        ),
        (["width", "height", "colour", "kind"], None, None),  # the same columns in the same order
    ],
)
def test_a_missing_extra_or_reordered_column_is_refused_before_any_row(
    columns: list[str], change: str | None, named: str | None
) -> None:
    rows = [r | {"size": i % 7} for i, r in enumerate(table(seed=1))]
    body = csv(rows, columns)
    if change is None:
        assert watched(body, contract_of(BASE)).changes == []
        return
    with pytest.raises(SchemaChangedError) as caught:
        watched(body, contract_of(BASE))
    message = str(caught.value)
    assert named in message
    assert "published-champ" in message
    assert "on_schema_change=accept" in message
    assert "line" not in message.split(":", 2)[1]  # refused at the header, before any row


def test_a_numeric_column_that_became_text_is_named_with_its_first_text() -> None:
    rows = table(seed=2)
    for i, row in enumerate(rows):
        row["height"] = ["low", "mid", "high"][i % 3]
    with pytest.raises(SchemaChangedError, match=r"column 'height' was numeric, is now categorical \('low' at line 2"):
        watched(csv(rows), contract_of(BASE))


def test_a_label_outside_the_label_set_is_refused_at_its_line() -> None:
    rows = table(seed=3)
    rows[10]["kind"] = "hamster"
    with pytest.raises(SchemaChangedError, match=r"label 'hamster' at line 12 is not in the contract's label set"):
        watched(csv(rows), contract_of(BASE))


def test_shuffled_columns_under_accept_are_recorded_and_block_promotion() -> None:
    shuffled = csv(table(seed=1), ["colour", "width", "height", "kind"])
    result = watched(shuffled, contract_of(BASE), policy="accept").result()
    changes = result["schema_change"]["changes"]
    assert [c["change"] for c in changes] == ["column order"]
    reason = promotion_block({"schema_change": result["schema_change"]})
    assert reason is not None
    assert "the feature columns' order changes" in reason


def test_a_class_of_the_label_set_that_no_row_has_is_refused_at_the_end_of_the_file(tmp_path: Path) -> None:
    # Given a champion that predicts birds too, and a file of cats and dogs only
    rows = table(seed=5)
    contract = contract_of(BASE, classes=("bird", "cat", "dog"))
    # Then, under fail: refused inside the write, nothing at the target
    dataset = target(str(tmp_path / "dataset.csv"))
    watch = DataWatch("test.csv", DatasetDescription().na_values, contract, "contract.json", "fail")
    with pytest.raises(SchemaChangedError) as caught:
        store_stream(
            [csv(rows)],
            dataset,
            shown="test.csv",
            policy=FetchPolicy(max_bytes=10**7),
            description=DatasetDescription(header="true"),
            progress=DownloadProgress(None, lambda: 0.0),
            watch=watch,
        )
    assert "no row has the class(es) bird of the contract's label set" in str(caught.value)
    assert "on_schema_change=accept" in str(caught.value)
    assert not dataset.exists()
    assert list(tmp_path.iterdir()) == []
    # Under accept: recorded with the class, and promotion is blocked
    result = watched(csv(rows), contract, policy="accept").result()
    changes = result["schema_change"]["changes"]
    assert [(c["change"], c["values"]) for c in changes] == [("lost class", ["bird"])]
    assert "no row has the class(es) bird" in str(promotion_block({"schema_change": result["schema_change"]}))


def test_integer_labels_are_compared_as_training_reads_them() -> None:
    rows = [{"x": i, "y": i % 3} for i in range(60)]
    contract = contract_of(csv(rows), classes=("0", "1", "2"))
    padded = [{"x": i, "y": f"0{i % 3}"} for i in range(60)]
    assert watched(csv(padded), contract).changes == []


def test_accept_records_every_change_and_the_card_blocks_automatic_promotion() -> None:
    rows = [r | {"size": 1} for r in table(seed=4)]
    rows[5]["kind"] = "hamster"
    rows[6]["kind"] = "hamster"
    watch = watched(csv(rows, ["width", "colour", "size", "kind"]), contract_of(BASE), policy="accept")
    result = watch.result()
    changes = result["schema_change"]["changes"]
    assert [(c["change"], c["column"]) for c in changes] == [
        ("missing column", "height"),
        ("extra column", "size"),
        ("unknown label", "kind"),
    ]
    assert result["schema_change"]["unknown_labels"] == {"hamster": 2}
    assert result["schema_change"]["policy"] == "accept"
    reason = promotion_block({"schema_change": result["schema_change"]})
    assert reason is not None
    assert reason.startswith("not promoted: its data does not match the contract of the champion published-champ")
    assert "'height'" in reason
    assert "pipeline promote" in reason
    assert promotion_block({"schema_change": None}) is None
    assert promotion_block({}) is None


def test_no_drift_on_the_same_data_and_psi_grows_with_a_shift() -> None:
    contract = contract_of(BASE)
    same = watched(BASE, contract).result()["drift"]
    assert same["features"]["width"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert same["features"]["colour"] == {"measure": "linf", "value": 0.0, "unseen_share": 0.0, "unseen": []}
    other_sample = watched(csv(table(seed=9)), contract).result()["drift"]
    shifted = watched(csv(table(seed=9, shift=3.0)), contract).result()["drift"]
    assert other_sample["features"]["width"]["value"] < 0.1  # another sample of the same distribution
    assert shifted["features"]["width"]["value"] > 1.0
    assert shifted["max"] == {"feature": "width", "value": shifted["features"]["width"]["value"], "measure": "psi"}


def test_a_new_category_is_unseen_share_and_linf() -> None:
    rows = table(seed=5, colours=("red", "green", "blue", "purple"))
    found = watched(csv(rows), contract_of(BASE)).result()["drift"]["features"]["colour"]
    purple = sum(r["colour"] == "purple" for r in rows) / len(rows)
    assert found["unseen"] == ["purple"]
    assert found["unseen_share"] == pytest.approx(purple, abs=1e-6)
    assert found["value"] >= purple - 1e-6


def test_the_gate_rejects_drift_over_max_drift_naming_the_features_and_is_off_by_default() -> None:
    card = {"drift": watched(csv(table(seed=9, shift=3.0)), contract_of(BASE)).result()["drift"]}
    assert drift_rule(card, None) is None
    assert drift_rule(card, 1000.0) is None
    reason = drift_rule(card, 0.25)
    assert reason is not None
    assert "'width' (psi " in reason
    assert "'height'" not in reason
    assert "max_drift 0.2500" in reason
    assert drift_rule({}, 0.1) is None  # no contract to drift from (the first model)


# --- the contract beside the champion ------------------------------------------------------------


def publish_with_profile(root: str, date: str, name: str, body: bytes) -> str:
    uri = publish_fake(root, date, name, classes=["cat", "dog"])
    card_target = target(uri).sibling("metrics.json")
    card = json.loads(card_target.read_bytes()) | {"data_profile": watched(body).profile()}
    card_target.write_bytes(json.dumps(card).encode(), overwrite=True)
    return uri


@pytest.fixture
def root(tmp_path: Path) -> str:
    return str(tmp_path / "published")


def test_each_change_of_champion_writes_its_contract_and_the_manifest_records_its_sha256(root: str) -> None:
    first = publish_with_profile(root, DAY, "aaaa", BASE)
    second = publish_with_profile(root, NEXT_DAY, "bbbb", csv(table(seed=7, shift=1.0)))
    promote(root, first, DAY, promoted_by="one", store=store())
    champion = read_champion(root, store=store())
    contract, why = contract_for(root, champion, store=store())
    assert contract is not None
    assert contract["champion"]["identity"] == "published-aaaa"
    assert why == "the contract of the champion published-aaaa"
    assert champion is not None
    assert champion["contract"]["uri"] == target(contract_uri(root)).uri
    promote(root, second, NEXT_DAY, promoted_by="two", store=store())
    after = contract_for(root, read_champion(root, store=store()), store=store())[0]
    assert after is not None
    assert after["champion"]["identity"] == "published-bbbb"
    rollback(root, promoted_by="operator", store=store())
    back = contract_for(root, read_champion(root, store=store()), store=store())[0]
    assert back == contract
    set_champion(root, second, promoted_by="operator", store=store())
    by_hand = contract_for(root, read_champion(root, store=store()), store=store())[0]
    assert by_hand == after


def test_a_contract_json_that_is_not_the_champions_is_made_again_from_its_card_or_refused(root: str) -> None:
    uri = publish_with_profile(root, DAY, "aaaa", BASE)
    promote(root, uri, DAY, promoted_by="one", store=store())
    champion = read_champion(root, store=store())
    contract = contract_for(root, champion, store=store())[0]
    assert contract is not None
    changed = dict(contract) | {"columns": {}}
    target(contract_uri(root)).write_bytes(json.dumps(changed).encode(), overwrite=True)
    rebuilt, why = contract_for(root, champion, store=store())
    assert rebuilt == contract
    assert "made again from its card" in why
    card_target = target(uri).sibling("metrics.json")
    card = json.loads(card_target.read_bytes())
    card["data_profile"]["columns"].pop("width")
    card_target.write_bytes(json.dumps(card).encode(), overwrite=True)
    with pytest.raises(IntegrityError, match="is not the contract the champion published-aaaa records"):
        contract_for(root, champion, store=store())


def test_a_champion_without_a_data_profile_has_no_contract(root: str) -> None:
    uri = publish_fake(root, DAY, "old")
    promote(root, uri, DAY, promoted_by="one", store=store())
    champion = read_champion(root, store=store())
    assert champion is not None
    assert champion["contract"] is None
    assert contract_for(root, champion, store=store())[0] is None
    assert not target(contract_uri(root)).exists()


def test_a_model_whose_card_records_an_accepted_schema_change_is_not_promoted_automatically(root: str) -> None:
    first = publish_with_profile(root, DAY, "aaaa", BASE)
    promote(root, first, DAY, promoted_by="one", store=store())
    second = publish_with_profile(root, NEXT_DAY, "bbbb", BASE)
    card_target = target(second).sibling("metrics.json")
    change = {
        "policy": "accept",
        "contract": {"champion": "published-aaaa"},
        "changes": [{"detail": "column 'x' is new"}],
    }
    card_target.write_bytes(
        json.dumps(json.loads(card_target.read_bytes()) | {"schema_change": change}).encode(), overwrite=True
    )
    result = promote(root, second, NEXT_DAY, promoted_by="two", store=store())
    assert result.promoted is False
    assert "column 'x' is new" in result.reason
    assert (read_champion(root, store=store()) or {})["identity"] == "published-aaaa"
    assert set_champion(root, second, promoted_by="operator", store=store()).promoted is True


# --- pipeline contract show|diff, and a dataset from before profiles ------------------------------


def test_pipeline_contract_show_and_diff_print_the_contract_and_each_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(tmp_path / "published")  # the publish root; the model iris's location is <root>/iris
    assert main(["contract", "show", "--publish-uri", root]) == 1
    assert "no contract at" in capsys.readouterr().err
    location = model_location(root, "iris")
    promote(location, publish_with_profile(location, DAY, "aaaa", BASE), DAY, promoted_by="one", store=store())
    assert main(["contract", "show", "--publish-uri", root, "--model", "other"]) == 1
    assert "there is no model 'other'" in capsys.readouterr().err
    assert main(["contract", "show", "--publish-uri", root]) == 0
    shown = capsys.readouterr().out
    assert "champion: published-aaaa" in shown
    assert "label 'kind': one of cat, dog" in shown
    assert "'colour': categorical, 3 values: " in shown
    assert "'width': numeric in [" in shown
    assert main(["contract", "show", "--publish-uri", root, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["champion"]["identity"] == "published-aaaa"
    # a file with a column less and a new colour: each difference, the drift, exit status 1
    changed = tmp_path / "changed.csv"
    changed.write_bytes(csv(table(seed=8, colours=("red", "green", "blue", "pink")), ["width", "colour", "kind"]))
    assert main(["contract", "diff", "--publish-uri", root, "--source-url", str(changed), "--header", "true"]) == 1
    out = capsys.readouterr().out
    assert "schema: 1 difference(s) from " in out
    assert "  missing column: column 'height' (numeric) is missing: the champion was trained with it" in out
    assert re.search(r"'colour': linf 0\.\d{4}, unseen categories \d+\.\d% \(pink\)", out)
    # the same data: no difference, no drift over the limit, exit status 0; shifted over --max-drift: 1
    same = tmp_path / "same.csv"
    same.write_bytes(BASE)
    assert main(["contract", "diff", "--publish-uri", root, "--source-url", str(same), "--max-drift", "0.1"]) == 0
    assert "schema: matches" in capsys.readouterr().out
    shifted = tmp_path / "shifted.csv"
    shifted.write_bytes(csv(table(seed=8, shift=3.0)))
    assert main(["contract", "diff", "--publish-uri", root, "--source-url", str(shifted), "--max-drift", "0.1"]) == 1
    assert "max_drift: rejected: " in capsys.readouterr().out
    assert main(["contract", "diff", "--publish-uri", root]) == 2
    assert "give the file to check with --source-url" in capsys.readouterr().err


def test_pipeline_contract_diff_reads_the_source_as_the_download_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], http_server: Any
) -> None:
    # Given a champion with a contract, and a shuffled file: gzip-compressed, behind a redirect, named by its date
    root = str(tmp_path / "published")
    location = model_location(root, "iris")
    uri = publish_with_profile(location, DAY, "aaaa", BASE)
    card_target = target(uri).sibling("metrics.json")
    card = json.loads(card_target.read_bytes()) | {"input": {"columns": ["width", "height", "colour"]}}
    card_target.write_bytes(json.dumps(card).encode(), overwrite=True)
    promote(location, uri, DAY, promoted_by="one", store=store())
    shuffled = csv(table(seed=9), ["height", "width", "colour", "kind"])
    (tmp_path / f"data-{NEXT_DAY}.csv.gz").write_bytes(gzip.compress(shuffled))
    (http_server.root / "same.csv.gz").write_bytes(gzip.compress(BASE))

    def redirect(handler: Any) -> None:
        handler.send_response(302)
        handler.send_header("Location", "/same.csv.gz")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    http_server.routes["/moved.csv"] = redirect
    diff = ["contract", "diff", "--publish-uri", root, "--header", "true"]
    # When the gzip file is diffed with {run_date} filled from --run-date: the order change, exit status 1
    named = str(tmp_path / "data-{run_date}.csv.gz")
    assert main([*diff, "--source-url", named, "--run-date", NEXT_DAY]) == 1
    out = capsys.readouterr().out
    assert "schema: 1 difference(s) from " in out
    assert "  column order: the feature columns' order changes: the contract's is 'width', 'height', 'colour'" in out
    # {yyyy}/{mm}/{dd} too; without --run-date today's file, which is not there: a message naming it
    parts = str(tmp_path / "data-{yyyy}-{mm}-{dd}.csv.gz")
    assert main([*diff, "--source-url", parts, "--run-date", NEXT_DAY]) == 1
    assert "column order" in capsys.readouterr().out
    assert main([*diff, "--source-url", named]) == 1
    assert "is not there (no such file)" in capsys.readouterr().err
    # When the same data is served gzip-compressed behind a 302: read through the redirect, it matches
    assert main([*diff, "--source-url", http_server.url("/moved.csv")]) == 0
    assert "schema: matches" in capsys.readouterr().out
    assert http_server.requests == ["/moved.csv", "/same.csv.gz"]


def test_a_dataset_without_its_profile_gets_one_made_for_the_card(tmp_path: Path) -> None:
    dataset = target(str(tmp_path / "dataset.csv"))
    dataset.write_bytes(BASE)
    run = Run(run_date=DAY, dataset=DatasetDescription(header="true").to_dict())
    sections = data_sections(dataset, run)
    assert sections["data_profile"]["columns"]["colour"]["kind"] == "categorical"
    assert (sections["drift"], sections["schema_change"]) == (None, None)
    write_profile(dataset, {"profile": {"rows": 1}, "drift": None, "schema_change": None})
    assert data_sections(dataset, run)["data_profile"] == {"rows": 1}  # the download's, when there is one
