"""Promote step: make the run's published model the champion when its run date is the newest so far."""

from __future__ import annotations

from typing import Any

from mlpipe import Run, Settings, Store, promote, step
from mlpipe.observability import instrumented

SETTINGS = Settings.from_env()
STORE = Store.from_settings(SETTINGS)
STEP = step("promote")


@instrumented(STEP.name)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return ``{"promoted", "reason", "champion_uri", "model_uri", "identity"}`` (and ``event`` when announced)."""
    run = Run.from_event(event, SETTINGS, needs=STEP.needs, store=STORE)
    return promote(run, store=STORE, settings=SETTINGS)
