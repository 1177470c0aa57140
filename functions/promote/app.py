"""Promote step: make the run's published model the champion when its run date is the newest so far."""

from __future__ import annotations

from typing import Any

from mlpipe import Run, Settings
from mlpipe.observability import instrumented
from mlpipe.tasks import promote

SETTINGS = Settings.from_env()


@instrumented("promote")
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return ``{"promoted", "reason", "champion_uri", "model_uri", "identity"}`` (and ``event`` when announced)."""
    fields = Run.from_event(
        event,
        required=("run_date", "published_uri", "publish_root"),
        optional=("execution_id", "max_regression"),
        settings=SETTINGS,
    )
    return promote(
        fields["published_uri"],
        fields["run_date"],
        publish_root=fields["publish_root"],
        execution_id=fields.get("execution_id"),
        settings=SETTINGS,
        max_regression=fields.get("max_regression", SETTINGS.max_regression),
    )
