"""Train task: fit the run's scikit-learn classifier on its dataset; store model.pkl and its card, only when missing."""

from __future__ import annotations

from typing import Any

from mlpipe import Run, Settings, Store, step, train
from mlpipe.observability import instrumented

SETTINGS = Settings.from_env()
STORE = Store.from_settings(SETTINGS)
STEP = step("train")


@instrumented(STEP.name)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return ``{"state": "ran" | "present", "target": model_uri, "gate": ...}`` (after a SageMaker job: the gate)."""
    run = Run.from_event(event, SETTINGS, needs=STEP.needs, store=STORE)
    return train(run, store=STORE, time_left=lambda: context.get_remaining_time_in_millis() / 1000).as_dict()
