"""`pipeline predict` as a user runs it: the champion (or a model by URI) predicts a CSV read like its training data."""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlpipe.champion import promote, read_champion
from mlpipe.storage import Store
from pipeline_local.runner import serve_directory
from tests.cli import pipeline, run_pipeline
from tests.conftest import SAMPLE
from tests.datasets import cases

DATE = "2026-11-25"


@dataclass(frozen=True)
class Published:
    """A pipeline run's published model, and the publish location it was made the champion of."""

    root: Path
    publish_uri: str
    model_uri: str


def _published(root: Path, *args: str) -> Published:
    summary = run_pipeline("--run-date", DATE, *args, cwd=root)
    published = summary["tasks"]["upload"]["target"]
    publish_uri = str(root / ".pipeline" / "published" / "iris")  # model iris's location
    promote(publish_uri, published, DATE, promoted_by="test", store=Store.on_this_machine())
    return Published(root, publish_uri, published)


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """The bundled sample (headerless, the label last) through the real pipeline; its model is the champion."""
    return _published(tmp_path_factory.mktemp("iris"))


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """A header, quoted categorical values, an id and a constant column, string labels; hist gradient boosting."""
    case = cases()["wine_categorical_quoted"]
    www = tmp_path_factory.mktemp("www")
    (www / "wine.csv").write_bytes(case.body)
    with serve_directory(www) as server:
        return _published(
            tmp_path_factory.mktemp("wine"),
            "--source-url",
            f"http://127.0.0.1:{server.server_address[1]}/wine.csv",
            "--label-column",
            case.label_name,
            "--estimator",
            case.estimator,
            "--hyperparameters",
            json.dumps(case.hyperparameters),
        )


def sample_labels() -> list[str]:
    return [row[-1] for row in csv.reader(io.StringIO(SAMPLE.read_text())) if row]


def test_the_champion_predicts_the_headerless_sample_and_reports_accuracy_on_its_label(iris: Published) -> None:
    result = pipeline("predict", "--json", "--input", str(SAMPLE), cwd=iris.root)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    champion = read_champion(iris.publish_uri, store=Store.on_this_machine())
    assert champion is not None
    assert found["model_uri"] == champion["model_uri"] == iris.model_uri
    truth = sample_labels()
    assert len(found["predictions"]) == len(truth) == 150
    agreement = sum(p == t for p, t in zip(found["predictions"], truth, strict=True)) / len(truth)
    assert agreement > 0.95
    assert found["accuracy"] == pytest.approx(agreement)
    assert found["probabilities"] is None  # a default SVC has no predict_proba (its card says so)
    assert "accuracy on the label column 'column_4'" in result.stderr


def test_without_the_label_column_the_predictions_are_a_csv_and_no_accuracy(iris: Published, tmp_path: Path) -> None:
    features_only = tmp_path / "features.csv"
    features_only.write_text("".join(line.rsplit(",", 1)[0] + "\n" for line in SAMPLE.read_text().splitlines() if line))
    output = tmp_path / "predictions.csv"
    result = pipeline("predict", "--input", str(features_only), "--output", str(output), cwd=iris.root)
    assert result.returncode == 0, result.stderr
    assert "accuracy" not in result.stderr
    rows = list(csv.DictReader(output.open()))
    assert list(rows[0]) == ["prediction"]
    truth = sample_labels()
    assert sum(r["prediction"] == t for r, t in zip(rows, truth, strict=True)) / len(truth) > 0.95
    # The same predictions on stdout without --output
    stdout = pipeline("predict", "--input", str(features_only), cwd=iris.root)
    assert stdout.stdout == output.read_text()


def wine_input(tmp_path: Path, *, drop: str | None = None) -> tuple[Path, list[str]]:
    """The held-out rows with their labels, an unknown extra column, the columns in another order; RFC 4180 quoted."""
    case = cases()["wine_categorical_quoted"]
    frame = case.holdout.copy()
    frame[case.label_name] = case.holdout_labels
    frame["note"] = "not a feature, ignored"
    frame = frame[list(reversed(frame.columns))]
    if drop:
        frame = frame.drop(columns=[drop])
    path = tmp_path / "wine-holdout.csv"
    frame.to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return path, [str(label) for label in case.holdout_labels]


def test_a_header_file_with_a_categorical_column_is_read_by_its_names(wine: Published, tmp_path: Path) -> None:
    path, truth = wine_input(tmp_path)
    result = pipeline("predict", "--json", "--model-uri", wine.model_uri, "--input", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["model_uri"] == wine.model_uri
    agreement = sum(p == t for p, t in zip(found["predictions"], truth, strict=True)) / len(truth)
    assert agreement >= cases()["wine_categorical_quoted"].min_accuracy
    assert found["accuracy"] == pytest.approx(agreement)
    assert sorted(found["classes"]) == ["barbera", "barolo", "grignolino"]
    assert len(found["probabilities"]) == len(truth)
    for row, predicted in zip(found["probabilities"], found["predictions"], strict=True):
        assert sum(row) == pytest.approx(1.0)
        assert found["classes"][row.index(max(row))] == predicted
    # As a CSV: the prediction, then one probability column per class
    as_csv = pipeline("predict", "--model-uri", wine.model_uri, "--input", str(path), cwd=tmp_path)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert list(rows[0]) == ["prediction", *(f"proba_{label}" for label in found["classes"])]
    assert [r["prediction"] for r in rows] == found["predictions"]


def test_a_missing_feature_column_is_an_error_naming_it_and_the_expected_ones(wine: Published, tmp_path: Path) -> None:
    path, _ = wine_input(tmp_path, drop="alcohol")
    result = pipeline("predict", "--model-uri", wine.model_uri, "--input", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "InvalidDatasetError" in result.stderr
    assert "feature column(s) 'alcohol' are not in the file" in result.stderr
    assert "it expects: batch, alcohol, region, malic_acid, color_intensity, country, proline" in result.stderr


def test_a_corrupted_model_is_refused_naming_it(iris: Published, tmp_path: Path) -> None:
    # Given a copy of the publish location whose champion's model.pkl is changed after promotion
    copy = tmp_path / "published" / "iris"
    shutil.copytree(iris.publish_uri, copy, ignore=shutil.ignore_patterns("champion*"))
    relative = Path(iris.model_uri.removeprefix("file://")).relative_to(iris.publish_uri)
    model = copy / relative
    promote(str(copy), model.as_uri(), DATE, promoted_by="test", store=Store.on_this_machine())
    model.write_bytes(model.read_bytes() + b"tampered")
    # When the champion predicts, or the model by its URI
    by_champion = pipeline("predict", "--publish-uri", str(copy.parent), "--input", str(SAMPLE), cwd=tmp_path)
    by_uri = pipeline("predict", "--model-uri", str(model), "--input", str(SAMPLE), cwd=tmp_path)
    # Then both are refused with exit status 1, naming the model, and nothing is predicted
    for result in (by_champion, by_uri):
        assert result.returncode == 1
        assert result.stdout == ""
        assert "IntegrityError" in result.stderr
        assert model.as_uri() in result.stderr
        assert "Traceback" not in result.stderr
    assert f"the champion {relative.parts[1]}" in by_champion.stderr


def test_without_a_champion_predict_says_so(tmp_path: Path) -> None:
    result = pipeline("predict", "--input", str(SAMPLE), cwd=tmp_path)
    assert result.returncode == 1
    assert "there is no champion at" in result.stderr
