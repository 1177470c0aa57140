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
    """Return ``{"run", "tasks", "start_at"}`` for the state machine's Choice state.

    The state machine sends ``{"input": <execution input>, "execution_id": ...}``; a direct invoke
    may send the execution input itself (events/execution.json, events/schedule.json). The backfill
    state machine sends ``{"backfill": <its input>, "default_max_concurrency"}`` and gets
    ``{"runs", "max_concurrency"}`` back.
    """
    if isinstance(event, dict) and "backfill" in event:
        return expand_backfill(event["backfill"], default_max_concurrency=event.get("default_max_concurrency"))
    if isinstance(event, dict) and "input" in event:
        return plan(event["input"], SETTINGS, store=STORE, execution_id=event.get("execution_id"))
    return plan(event, SETTINGS, store=STORE)
