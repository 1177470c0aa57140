"""Train task: fit the run's scikit-learn classifier on its dataset; store model.pkl and its card, only when missing."""

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
        optional=(
            "estimator",
            "hyperparameters",
            "cv_folds",
            "dataset",
            "identities",
            "execution_id",
            "publish_root",
            "min_cv_accuracy",
            "max_regression",
            "train_on",
        ),
        settings=SETTINGS,
    )
    estimator = fields.get("estimator", SETTINGS.estimator)
    default_hyper = SETTINGS.hyperparameters if estimator == SETTINGS.estimator else {}
    return train(
        fields["dataset_uri"],
        fields["model_uri"],
        estimator=estimator,
        hyperparameters=fields.get("hyperparameters", default_hyper),
        cv_folds=fields.get("cv_folds", SETTINGS.cv_folds),
        description=fields.get("dataset", SETTINGS.dataset),
        settings=SETTINGS,
        identity=fields.get("identities", {}).get("train"),
        execution_id=fields.get("execution_id"),
        publish_root=fields.get("publish_root"),
        min_cv_accuracy=fields.get("min_cv_accuracy", SETTINGS.min_cv_accuracy),
        max_regression=fields.get("max_regression", SETTINGS.max_regression),
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        trained_elsewhere=fields.get("train_on") == "sagemaker",  # after the job: only the gate's numbers
    ).as_dict()
