"""Top-down completeness, as Luigi's scheduler sees it: start at the final output, stop at the first present one.

Also the run's quality gate (``model_gate``), decided here once for the plan (a model that exists
already) and the train task (a model it just trained or found).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from mlpipe.artifacts import model_complete, read_metrics
from mlpipe.champion import champion_uri, history_name, read_champion
from mlpipe.config import Run
from mlpipe.exceptions import LegacyPublishLayoutError
from mlpipe.gate import drift_rule, evaluate
from mlpipe.naming import HISTORY_DIR, legacy_champion_uri
from mlpipe.steps import OUTPUTS, TASKS
from mlpipe.storage import Store, Target


def plan_run(run: Run, *, store: Store) -> dict[str, Any]:
    """Look at the published model, then the model, then the dataset; return what must run.

    First it removes what killed local writes left in the run's target folders (``Target.sweep``).

    Returns ``{"run": ..., "tasks": {name: {"state", "target"}}, "start_at": name | "none"}`` where a
    state is "pending" (will run), "present" or "not_run" (missing, but not needed because a task
    downstream of it is complete: Luigi never looks below a complete task).
    """
    targets = {name: getattr(run, output.field) for name, output in OUTPUTS.items()}
    for task in (TASKS[0], TASKS[-1]):  # fail before any work on a missing bucket or directory
        store.target(targets[task]).check_location()
    if run.publish_root:
        check_migrated(run, store=store)
    for uri in targets.values():  # what killed local writes left: <root>/<date>/<identity>/.<file>.….partial
        store.target(uri).sweep(empty_folders=2)
    present = {name: complete(store.target(targets[name]), name) for name in TASKS}
    start_at = "none"
    for name in reversed(TASKS):  # upload, train, download: stop at the first complete one
        if present[name]:
            break
        start_at = name
    first = TASKS.index(start_at) if start_at != "none" else len(TASKS)
    tasks: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(TASKS):
        state = "pending" if index >= first else "present" if present[name] else "not_run"
        tasks[name] = {"state": state, "target": targets[name]}
    if start_at == "upload":  # the model exists: the gate decides on its card without retraining
        tasks["train"]["gate"] = model_gate(run, read_metrics(store.target(run.model_uri)), store=store)
    elif start_at == "none" and run.publish_root and promotion_due(run, store=store):
        start_at = "promote"  # published, but never promoted (say the promote step failed): resume there
    return {"run": run.to_event(), "tasks": tasks, "start_at": start_at}


def check_migrated(run: Run, *, store: Store) -> None:
    """LegacyPublishLayoutError when the publish root still has its champion from before models had names and the
    run's model has none yet: a run would start a second champion that no consumer of the first one reads."""
    assert run.publish_root is not None
    legacy = store.target(legacy_champion_uri(run.publish_root))
    if legacy.exists() and not store.target(champion_uri(run.publish_root)).exists():
        raise LegacyPublishLayoutError(
            f"{legacy.uri} is a champion from before models had names (each model now has its own under "
            f"<publish root>/<model>/); nothing was run. Move it to model {run.model!r} with `pipeline models "
            f"migrate --publish-uri {legacy.uri.rsplit('/', 1)[0]} --model {run.model}` (docs/models.md, Migration)"
        )


def complete(target: Target, task: str) -> bool:
    """Whether ``task``'s output is complete: a dataset when it exists; a model (trained or published) when
    model.pkl and its card both do."""
    return model_complete(target) if OUTPUTS[task].card else target.exists()


def model_gate(run: Run, card: dict[str, Any], *, store: Store) -> dict[str, Any]:
    """The run's gate for a model's card: its thresholds, against the champion under the run's publish root."""
    champion = read_champion(run.publish_root, store=store) if run.publish_root else None
    gate = evaluate(
        card,
        champion,
        model_uri=store.target(run.model_uri).uri,
        min_cv_accuracy=run.min_cv_accuracy,
        max_regression=run.max_regression,
        accept_schema_change=run.on_schema_change == "accept",  # published, then kept from promotion
        min_lift_over_baseline=run.min_lift_over_baseline,
    )
    drifted = drift_rule(card, run.max_drift)
    gate["max_drift"] = run.max_drift
    gate["drift"] = (card.get("drift") or {}).get("max")  # the largest, for the run's summary
    if drifted is not None:  # the state machine's Choice reads "passed" too
        gate |= {"passed": False, "reason": f"model {store.target(run.model_uri).uri} is rejected: {drifted}"}
    return gate


def promotion_due(run: Run, *, store: Store) -> bool:
    """True when the run's published model should be champion and no decision about the champion came since.

    That is the promote step that never ran (it failed after the publish): the champion is not of a
    newer date, is not this model, and nothing changed it (promotion, rollback, a hand promotion)
    after this model was published. A model refused for being older, or rolled back, stays so.
    """
    assert run.publish_root is not None
    identity = run.published_uri.rsplit("/", 2)[-2]
    champion = read_champion(run.publish_root, store=store)
    if champion is not None and (champion.get("identity") == identity or str(champion.get("run_date")) > run.run_date):
        return False
    card = read_metrics(store.target(run.published_uri))
    since: dt.datetime | None = None
    with contextlib.suppress(TypeError, ValueError):
        since = dt.datetime.fromisoformat(str((card.get("publication") or {}).get("created_at")))
    for item in store.list(store.join(run.publish_root, HISTORY_DIR)):
        entry = history_name(item.relative)
        if entry is None:
            continue  # not a history entry (read_history names it when the history is read)
        changed, promoted = entry
        if promoted == identity:
            return False  # it was champion once: a rollback or a later promotion decided against it since
        if since is not None and changed > since:
            return False
    return True
