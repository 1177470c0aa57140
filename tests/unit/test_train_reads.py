"""Training reads what the download checked: the check is reused when the bytes match, redone when they do not.

And the card's training accuracy is measured on a seeded sample above TRAINING_ACCURACY_ROWS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlpipe import scaling, tasks, training
from mlpipe.config import Run, Settings
from mlpipe.dataset import DatasetStats, validate_dataset
from mlpipe.description import DatasetDescription
from mlpipe.exceptions import InvalidDatasetError
from mlpipe.lineage import known_stats
from mlpipe.storage import Store
from tests.conftest import SAMPLE
from tests.datasets import cases
from tests.stores import target as target_for

DATE = "2026-11-25"
SETTINGS = Settings(
    artifact_root="/unused", publish_uri="/unused", allow_local_storage=True, allow_loopback_sources=True
)


@pytest.mark.parametrize("name", sorted(cases()))
def test_stats_survive_their_json_form(name: str) -> None:
    case = cases()[name]
    description = DatasetDescription.from_value(case.description)
    stats = validate_dataset([case.body], "memory://x", description)
    assert DatasetStats.from_dict(json.loads(json.dumps(stats.to_dict()))) == stats


def download(http_server: Any, tmp_path: Path, description: DatasetDescription | None = None) -> str:
    dataset = str(tmp_path / "artifacts" / "dataset.csv")
    run = Run(
        DATE,
        source_url=http_server.url(),
        dataset_uri=dataset,
        max_source_bytes=1_000_000,
        dataset=(description or DatasetDescription()).to_dict(),
    )
    outcome = tasks.download(run, store=Store.from_settings(SETTINGS), settings=SETTINGS)
    assert outcome.state == "ran"
    return dataset


def train(dataset: str, model: str, **options: Any) -> tasks.TaskOutcome:
    run = Run(
        DATE,
        dataset_uri=dataset,
        model_uri=model,
        estimator="svc",
        cv_folds=options.pop("cv_folds", 5),
        dataset=options.pop("description", DatasetDescription()).to_dict(),
    )
    return tasks.train(run, store=Store.from_settings(SETTINGS), **options)


def test_training_reuses_the_download_check_of_the_same_bytes(
    http_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = download(http_server, tmp_path)

    def no_second_pass(*_: Any, **__: Any) -> None:
        raise AssertionError("the dataset was validated a second time")

    monkeypatch.setattr(training, "validate_dataset", no_second_pass)
    outcome = train(dataset, str(tmp_path / "model" / "model.pkl"))
    card = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert outcome.state == "ran"
    assert card["dataset"]["resolved"]["columns"] == [f"column_{i}" for i in range(5)]
    assert card["rows"] == 150


def test_training_validates_again_when_the_stored_bytes_changed(http_server: Any, tmp_path: Path) -> None:
    # Given a dataset whose stored bytes are no longer those its download checked
    dataset = download(http_server, tmp_path)
    with open(dataset, "ab") as handle:
        handle.write(b"5.0,3.0,1.0\n")
    # When it is trained on, then its own validation finds the bad row, and no model is written
    with pytest.raises(InvalidDatasetError, match=r"line 152"):
        train(dataset, str(tmp_path / "model" / "model.pkl"))
    assert not (tmp_path / "model").exists()


def test_training_validates_again_under_another_description(
    http_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = download(http_server, tmp_path)
    calls: list[str] = []
    original = training.validate_dataset

    def counted(*args: Any, **kwargs: Any) -> DatasetStats:
        calls.append(args[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "validate_dataset", counted)
    described = DatasetDescription.from_value({"labels": ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]})
    assert train(dataset, str(tmp_path / "model" / "model.pkl"), description=described).state == "ran"
    assert calls == [target_for(dataset).uri]


def test_a_reused_check_still_holds_the_classes_to_this_runs_folds(http_server: Any, tmp_path: Path) -> None:
    dataset = download(http_server, tmp_path)  # 50 rows per class
    with pytest.raises(InvalidDatasetError, match=r"class 'Iris-setosa' has 50 rows, fewer than the 60 folds"):
        train(dataset, str(tmp_path / "model" / "model.pkl"), cv_folds=60)


def test_an_unreadable_record_means_training_validates_itself(http_server: Any, tmp_path: Path) -> None:
    dataset = download(http_server, tmp_path)
    (tmp_path / "artifacts" / "lineage.json").write_text("{not json")
    assert known_stats(target_for(dataset), DatasetDescription()) is None
    assert train(dataset, str(tmp_path / "model" / "model.pkl")).state == "ran"


def test_training_accuracy_is_measured_on_a_seeded_sample_above_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = tmp_path / "iris.data"
    dataset.write_bytes(SAMPLE.read_bytes())
    cards = []
    for name, limit in (("all", 1000), ("sample", 60), ("again", 60)):
        monkeypatch.setattr(scaling, "TRAINING_ACCURACY_ROWS", limit)
        model = tmp_path / name / "model.pkl"
        training.train_model(
            target_for(str(dataset)), target_for(str(model)), estimator="svc", hyperparameters={}, cv_folds=5
        )
        cards.append(json.loads((model.parent / "metrics.json").read_text()))
    assert [c["training_accuracy_rows"] for c in cards] == [150, 60, 60]
    assert cards[1]["training_accuracy"] == cards[2]["training_accuracy"]
    assert 0.9 <= cards[1]["training_accuracy"] <= 1.0
