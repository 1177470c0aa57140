"""Plan step: resolve the execution's input into a run and decide, top-down, which tasks must run."""

from __future__ import annotations

from typing import Any

from mlpipe import Settings, plan
from mlpipe.observability import instrumented

SETTINGS = Settings.from_env()


@instrumented("plan")
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return ``{"run", "tasks", "start_at"}`` for the state machine's Choice state."""
    return plan(event, SETTINGS)
