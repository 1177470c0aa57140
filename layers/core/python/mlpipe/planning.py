"""Top-down completeness, as Luigi's scheduler sees it: start at the final output, stop at the first present one."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from mlpipe.artifacts import model_complete, read_metrics
from mlpipe.champion import HISTORY_DIR, read_champion
from mlpipe.config import Run
from mlpipe.gate import gate_for
from mlpipe.targets import join_uri, list_under, target_for

TASKS = ("download", "train", "upload")


def plan_run(run: Run, *, allow_local: bool = True) -> dict[str, Any]:
    """Look at the published model, then the model, then the dataset; return what must run.

    Returns ``{"run": ..., "tasks": {name: {"state", "target"}}, "start_at": name | "none"}`` where a
    state is "pending" (will run), "present" or "not_run" (missing, but not needed because a task
    downstream of it is complete: Luigi never looks below a complete task).
    """
    for uri in (run.dataset_uri, run.published_uri):  # fail before any work on a missing bucket or directory
        target_for(uri, allow_local=allow_local).check_location()
    published = model_complete(target_for(run.published_uri, allow_local=allow_local), allow_local=allow_local)
    model = model_complete(target_for(run.model_uri, allow_local=allow_local), allow_local=allow_local)
    dataset = target_for(run.dataset_uri, allow_local=allow_local).exists()
    present = {"upload": published, "train": model, "download": dataset}
    start_at = "none"
    for name in reversed(TASKS):  # upload, train, download
        if present[name]:
            break
        start_at = name
    first = TASKS.index(start_at) if start_at != "none" else len(TASKS)
    targets = {"download": run.dataset_uri, "train": run.model_uri, "upload": run.published_uri}
    tasks: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(TASKS):
        state = "pending" if index >= first else "present" if present[name] else "not_run"
        tasks[name] = {"state": state, "target": targets[name]}
    if start_at == "upload":  # the model exists: the gate decides on its card without retraining
        card = read_metrics(target_for(run.model_uri, allow_local=allow_local), allow_local=allow_local)
        tasks["train"]["gate"] = gate_for(
            card, run.model_uri, run.publish_root, run.min_cv_accuracy, run.max_regression, allow_local=allow_local
        )
    elif start_at == "none" and run.publish_root and promotion_due(run, allow_local=allow_local):
        start_at = "promote"  # published, but never promoted (say the promote step failed): resume there
    return {"run": run.to_event(), "tasks": tasks, "start_at": start_at}


def promotion_due(run: Run, *, allow_local: bool) -> bool:
    """True when the run's published model should be champion and no decision about the champion came since.

    That is the promote step that never ran (it failed after the publish): the champion is not of a
    newer date, is not this model, and nothing changed it (promotion, rollback, a hand promotion)
    after this model was published. A model refused for being older, or rolled back, stays so.
    """
    assert run.publish_root is not None
    identity = run.published_uri.rsplit("/", 2)[-2]
    champion = read_champion(run.publish_root, allow_local=allow_local)
    if champion is not None and (champion.get("identity") == identity or str(champion.get("run_date")) > run.run_date):
        return False
    published = target_for(run.published_uri, allow_local=allow_local)
    card = read_metrics(published, allow_local=allow_local)
    since: dt.datetime | None = None
    with contextlib.suppress(TypeError, ValueError):
        since = dt.datetime.fromisoformat(str((card.get("publication") or {}).get("created_at")))
    history = list_under(join_uri(run.publish_root, HISTORY_DIR, allow_local=allow_local), allow_local=allow_local)
    for item in history:
        if f"-{identity}-" in item.relative:
            return False  # it was champion once: a rollback or a later promotion decided against it since
        stamp = item.relative.split("-", 1)[0]  # 20261201T214202.177297Z
        with contextlib.suppress(ValueError):
            changed = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=dt.UTC)
            if since is not None and changed > since:
                return False
    return True
