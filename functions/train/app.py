"""Train task: fit the SVM on the run's dataset and store model.pkl and metrics.json, only when missing."""

from __future__ import annotations

from typing import Any

from mlpipe import Run, Settings, train
from mlpipe.observability import instrumented

SETTINGS = Settings.from_env()


@instrumented("train")
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return ``{"state": "ran" | "present", "target": model_uri, ...}``."""
    fields = Run.from_event(
        event,
        required=("run_date", "dataset_uri", "model_uri"),
        optional=("hyperparameters", "cv_folds"),
        settings=SETTINGS,
    )
    return train(
        fields["dataset_uri"],
        fields["model_uri"],
        hyperparameters=fields.get("hyperparameters", SETTINGS.hyperparameters),
        cv_folds=fields.get("cv_folds", SETTINGS.cv_folds),
        settings=SETTINGS,
    ).as_dict()
