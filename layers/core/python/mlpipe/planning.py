"""Top-down completeness, as Luigi's scheduler sees it: start at the final output, stop at the first present one."""

from __future__ import annotations

from typing import Any

from mlpipe.artifacts import model_complete
from mlpipe.config import Run
from mlpipe.targets import target_for

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
    tasks = {}
    for index, name in enumerate(TASKS):
        state = "pending" if index >= first else "present" if present[name] else "not_run"
        tasks[name] = {"state": state, "target": targets[name]}
    return {"run": run.to_event(), "tasks": tasks, "start_at": start_at}
