"""Download task: fetch the run's dataset into the artifact store, only when it is missing."""

from __future__ import annotations

from typing import Any

from mlpipe import Run, Settings, download
from mlpipe.observability import instrumented

SETTINGS = Settings.from_env()


@instrumented("download")
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return ``{"state": "ran" | "present", "target": dataset_uri, ...}``."""
    fields = Run.from_event(
        event,
        required=("run_date", "source_url", "dataset_uri"),
        optional=("max_source_bytes", "cv_folds", "dataset", "identities", "execution_id"),
        settings=SETTINGS,
    )
    return download(
        fields["source_url"],
        fields["dataset_uri"],
        max_source_bytes=fields.get("max_source_bytes", SETTINGS.max_source_bytes),
        cv_folds=fields.get("cv_folds", SETTINGS.cv_folds),
        description=fields.get("dataset", SETTINGS.dataset),
        settings=SETTINGS,
        identity=fields.get("identities", {}).get("download"),
        execution_id=fields.get("execution_id"),
    ).as_dict()
