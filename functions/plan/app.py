"""Plan step: resolve the execution's input into a run and decide, top-down, which tasks must run."""

from __future__ import annotations

from typing import Any

from mlpipe import Settings, Store, plan
from mlpipe.backfill import expand_backfill
from mlpipe.observability import instrumented

SETTINGS = Settings.from_env()
STORE = Store.from_settings(SETTINGS)


@instrumented("plan")
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """``{"run", "tasks", "start_at"}`` for the Choice state, from ``{"input", "execution_id"}`` (the state machine)
    or the execution input itself (a direct invoke); the backfill's ``{"backfill", ...}`` gets its runs back."""
    if isinstance(event, dict) and "backfill" in event:
        return expand_backfill(event["backfill"], default_max_concurrency=event.get("default_max_concurrency"))
    if isinstance(event, dict) and "input" in event:
        return plan(
            event["input"], SETTINGS, store=STORE, execution_id=event.get("execution_id"), source=event.get("source")
        )
    return plan(event, SETTINGS, store=STORE)
