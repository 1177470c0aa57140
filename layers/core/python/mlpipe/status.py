"""What exists: every dataset, model and published model under the roots, by run date, with its identity and state.

Targets live at ``<root>/<run date>/<family>-<digest>/<file>`` (``mlpipe.identity``). A dataset is
present when ``dataset.csv`` is there; a model or a published model when both ``model.pkl`` and
its card are, and *incomplete* when only one of them is (a crash between the two writes, or a
hand-deleted file). Models carry their CV accuracy and estimator (from the card); for each date
the newest published model (by when it was published) is marked.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from mlpipe.artifacts import CARD_FILE
from mlpipe.config import parse_run_date
from mlpipe.exceptions import InvalidRequestError
from mlpipe.redaction import redact_url
from mlpipe.steps import OUTPUTS
from mlpipe.storage import Store, StoredObject

# What makes each family's folder complete, and the file that names it, from the registry.
MAIN_FILE = {output.family: output.file for output in OUTPUTS.values()}
COMPLETE = {output.family: {output.file, CARD_FILE} if output.card else {output.file} for output in OUTPUTS.values()}
ROOTS = {output.family: output.root for output in OUTPUTS.values()}
LISTS = {"dataset": "datasets", "model": "models", "published": "published"}  # the status's key of each family


def collect_status(
    artifact_root: str,
    publish_uri: str,
    *,
    first: str | None = None,
    last: str | None = None,
    store: Store,
) -> dict[str, Any]:
    """``{"runs": [{"run_date", "datasets", "models", "published"}]}`` for the dates in ``[first, last]``."""
    for value in (first, last):
        if value is not None:
            parse_run_date(value)
    if first and last and last < first:
        raise InvalidRequestError(f"the range ends ({last}) before it starts ({first})")
    groups: dict[tuple[str, str, str], dict[str, StoredObject]] = defaultdict(dict)
    roots = {"artifact_root": artifact_root, "publish_uri": publish_uri}
    for root_name, root in roots.items():
        for item in store.list(root):
            parts = item.relative.split("/")
            if len(parts) != 3:
                continue
            run_date, folder, name = parts
            family = folder.split("-", 1)[0]
            if ROOTS.get(family) != root_name:
                continue
            if (first and run_date < first) or (last and run_date > last):
                continue
            groups[(run_date, family, folder)][name] = item
    runs: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: {key: [] for key in LISTS.values()})
    for (run_date, family, folder), files in sorted(groups.items()):
        runs[run_date][LISTS[family]].append(_entry(family, folder, files, store=store))
    result = []
    for run_date in sorted(runs):
        published = runs[run_date]["published"]
        complete = [p for p in published if p["state"] == "present"]
        newest = max(complete, key=lambda p: p["made"] or "", default=None)
        for entry in published:
            entry["newest"] = entry is newest
        result.append({"run_date": run_date, **runs[run_date]})
    return {"runs": result}


def _entry(family: str, folder: str, files: dict[str, StoredObject], *, store: Store) -> dict[str, Any]:
    main = files.get(MAIN_FILE[family])
    state = "present" if COMPLETE[family] <= set(files) else "incomplete"
    any_file = main or next(iter(files.values()))
    entry: dict[str, Any] = {
        "uri": main.uri if main else any_file.uri.rsplit("/", 1)[0] + "/" + MAIN_FILE[family],
        "identity": folder,
        "state": state,
        "size": main.size if main else None,
        "made": any_file.modified,
    }
    if family == "dataset":
        lineage = _read_json(files.get("lineage.json"), store=store)
        entry["made"] = lineage.get("created_at") or entry["made"]
        source = (lineage.get("inputs") or {}).get("source")
        entry["source"] = redact_url(source) if isinstance(source, str) else source  # records made before redaction
        return entry
    card = _read_json(files.get("metrics.json"), store=store)
    section = card.get("publication" if family == "published" else "lineage") or {}
    entry["made"] = section.get("created_at") or entry["made"]
    entry["cv_accuracy"] = (card.get("cv_accuracy") or {}).get("mean")
    estimator = card.get("estimator") or {}
    entry["estimator"] = estimator.get("name")
    entry["hyperparameters"] = estimator.get("non_default_hyperparameters")
    if family == "model":
        entry["dataset"] = ((card.get("lineage") or {}).get("inputs") or {}).get("dataset")
    else:
        entry["model"] = (section.get("inputs") or {}).get("model")
    return entry


def _read_json(item: StoredObject | None, *, store: Store) -> dict[str, Any]:
    if item is None:
        return {}
    try:
        value = json.loads(store.target(item.uri).read_bytes())
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _shown(value: Any) -> str:
    """``value`` as JSON; its repr when it holds NaN or infinity (a card from before they were refused)."""
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except ValueError:
        return repr(value)


def format_status(status: dict[str, Any]) -> str:
    """A readable table, one line per target, grouped by run date."""
    lines: list[str] = []
    for run in status["runs"]:
        lines.append(f"===== {run['run_date']} =====")
        for kind, entries in (("dataset", run["datasets"]), ("model", run["models"]), ("published", run["published"])):
            for entry in entries:
                detail = ""
                if kind != "dataset":
                    accuracy = entry.get("cv_accuracy")
                    shown = f"{accuracy:.4f}" if isinstance(accuracy, int | float) else "-"
                    params = _shown(entry.get("hyperparameters") or {})
                    detail = f"  cv {shown}  {entry.get('estimator') or '-'} {params}"
                newest = "  (newest)" if entry.get("newest") else ""
                size = entry["size"] if entry["size"] is not None else "-"
                head = f"  {kind:<9} {entry['identity']:<22} {entry['state']:<10} {size:>9} B  {entry['made']}"
                lines.append(head + detail + newest)
                lines.append(f"            {entry['uri']}")
    if not lines:
        lines.append("nothing found")
    return "\n".join(lines)
