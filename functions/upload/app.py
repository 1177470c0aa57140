"""Upload task: publish the run's model after checking its sha256, only when it is not published yet."""

from __future__ import annotations

from typing import Any

from mlpipe import Run, Settings, upload
from mlpipe.observability import instrumented

SETTINGS = Settings.from_env()


@instrumented("upload")
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return ``{"state": "ran" | "present", "target": published_uri, ...}``."""
    fields = Run.from_event(
        event,
        required=("run_date", "model_uri", "published_uri"),
        optional=("identities", "execution_id"),
        settings=SETTINGS,
    )
    return upload(
        fields["model_uri"],
        fields["published_uri"],
        settings=SETTINGS,
        identity=fields.get("identities", {}).get("upload"),
        execution_id=fields.get("execution_id"),
    ).as_dict()
