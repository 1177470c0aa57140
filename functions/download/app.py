"""Download task: fetch the run's dataset into the artifact store, only when it is missing."""

from __future__ import annotations

from typing import Any

from mlpipe import Run, Settings, Store, download, step
from mlpipe.observability import instrumented

SETTINGS = Settings.from_env()
STORE = Store.from_settings(SETTINGS)
STEP = step("download")


@instrumented(STEP.name)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return ``{"state": "ran" | "present", "target": dataset_uri, ...}``."""
    run = Run.from_event(event, SETTINGS, needs=STEP.needs, store=STORE)
    return download(
        run, store=STORE, settings=SETTINGS, time_left=lambda: context.get_remaining_time_in_millis() / 1000
    ).as_dict()
