"""Pinned target names: the restructuring of the code must not move a single target.

The URIs below were printed by the code before the "One house" restructuring; the same inputs must
keep giving the same locations (Luigi's skip depends on it), until TRAINING_CODE_VERSION or
scikit-learn's minor version is bumped on purpose (then regenerate them, and say so in the commit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlpipe.config import Settings, resolve_run

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:sm:exec-1"
S3 = {"artifact_root": "s3://artifacts-bucket/artifacts", "publish_uri": "s3://models-bucket/models"}
PINS: list[tuple[str, dict[str, Any], tuple[str, str, str]]] = [
    (
        "the seed's defaults",
        {"run_date": "2026-01-02", "source_url": "https://example.org/iris.data"},
        (
            "2026-01-02/dataset-aac16181c5c8/dataset.csv",
            "2026-01-02/model-f04c39ab679b/model.pkl",
            "iris/2026-01-02/published-61cb656f4cac/model.pkl",
        ),
    ),
    (
        "another estimator, hyperparameters, folds and description, a dated source",
        {
            "run_date": "2026-03-04",
            "source_url": "https://example.org/{run_date}.csv",
            "estimator": "random_forest",
            "hyperparameters": {"n_estimators": 50},
            "cv_folds": 3,
            "dataset": {"label_column": "species", "header": True, "missing": "impute"},
        },
        (
            "2026-03-04/dataset-c9b1e6ee8c77/dataset.csv",
            "2026-03-04/model-99c78152d881/model.pkl",
            "iris/2026-03-04/published-c79829744832/model.pkl",
        ),
    ),
    (
        "a forced train",
        {"run_date": "2026-01-02", "source_url": "https://example.org/iris.data", "force": "train"},
        (
            "2026-01-02/dataset-aac16181c5c8/dataset.csv",
            "2026-01-02/model-d55235a4f087/model.pkl",
            "iris/2026-01-02/published-4eebf1e83c00/model.pkl",
        ),
    ),
]


@pytest.mark.parametrize(("case", "execution_input", "expected"), PINS, ids=[p[0] for p in PINS])
def test_the_same_inputs_keep_their_s3_targets(
    case: str, execution_input: dict[str, Any], expected: tuple[str, str, str]
) -> None:
    run = resolve_run(execution_input, Settings(**S3), execution_id=EXECUTION)
    assert (run.dataset_uri, run.model_uri, run.published_uri) == (
        f"{S3['artifact_root']}/{expected[0]}",
        f"{S3['artifact_root']}/{expected[1]}",
        f"{S3['publish_uri']}/{expected[2]}",
    )


def test_the_same_inputs_keep_their_local_targets(tmp_path: Path) -> None:
    settings = Settings(
        artifact_root=str(tmp_path / "artifacts"), publish_uri=str(tmp_path / "models"), allow_local_storage=True
    )
    execution_input = {
        "run_date": "2026-12-01",
        "source_url": "https://example.org/x.csv",
        "source_id": "sample:iris",
        "estimator": "auto",
    }
    run = resolve_run(execution_input, settings, execution_id=EXECUTION)
    assert run.dataset_uri == (tmp_path / "artifacts/2026-12-01/dataset-8fc7f2071d69/dataset.csv").as_uri()
    assert run.model_uri == (tmp_path / "artifacts/2026-12-01/model-9912d303fde3/model.pkl").as_uri()
    assert run.published_uri == (tmp_path / "models/iris/2026-12-01/published-adc096b6a024/model.pkl").as_uri()
