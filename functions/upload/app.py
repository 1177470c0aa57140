"""Upload task: publish the run's model after checking its sha256, only when it is not published yet."""

from __future__ import annotations

from typing import Any

from mlpipe import Run, Settings, Store, step, upload
from mlpipe.observability import instrumented

SETTINGS = Settings.from_env()
STORE = Store.from_settings(SETTINGS)
STEP = step("upload")


@instrumented(STEP.name)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return ``{"state": "ran" | "present", "target": published_uri, ...}``."""
    run = Run.from_event(event, SETTINGS, needs=STEP.needs, store=STORE)
    return upload(run, store=STORE).as_dict()
