"""What exists: every dataset, model and published model under the roots, by run date, with its identity and state.

Targets live at ``<root>/<run date>/<family>-<digest>/<file>`` (``mlpipe.identity``). A dataset is
present when ``dataset.csv`` is there; a model or a published model when ``model.pkl`` is there
with a card that records its sha256 (``mlpipe.artifacts.model_complete``), and *incomplete*
otherwise: a model without its card (a run killed between the two writes), a card without its
model (a hand-deleted file, or a publish killed by an older version that wrote the card first), or
a card that describes other bytes. Models carry their CV accuracy and estimator (from the card); for each date
the newest published model (by when it was published) is marked.

Anything else under a root (a copied folder ``published-… copy``, a file at another depth, a folder
that is not a run date, a file the pipeline does not write, an S3 key with ``#`` or ``?`` in a
folder's name) is not the pipeline's: it is skipped, never read, and named in the result's
``skipped`` list and in a warning, so that one stray entry never breaks the status of a whole root.
The champion's own files (``champion.json``, ``champion-history/``, and its ``contract.json``) are
``mlpipe.champion``'s to check.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from typing import Any

from mlpipe.artifacts import CARD_FILE
from mlpipe.config import parse_run_date
from mlpipe.contract import CONTRACT_FILE, PROFILE_FILE
from mlpipe.exceptions import InvalidRequestError, StorageError
from mlpipe.gate import card_score, section
from mlpipe.identity import DIGITS
from mlpipe.lineage import LINEAGE_FILE
from mlpipe.naming import CHAMPION_FILE, HISTORY_DIR
from mlpipe.redaction import redact_url
from mlpipe.steps import OUTPUTS
from mlpipe.storage import Store, StoredObject

LOG = logging.getLogger(__name__)

# What makes each family's folder complete, and the file that names it, from the registry.
MAIN_FILE = {output.family: output.file for output in OUTPUTS.values()}
COMPLETE = {output.family: {output.file, CARD_FILE} if output.card else {output.file} for output in OUTPUTS.values()}
ROOTS = {output.family: output.root for output in OUTPUTS.values()}
LISTS = {"dataset": "datasets", "model": "models", "published": "published"}  # the status's key of each family
# Every file the pipeline writes in a family's folder: the output, and its card or its lineage record.
FILES = {output.family: {output.file, CARD_FILE if output.card else LINEAGE_FILE} for output in OUTPUTS.values()}
FILES["dataset"].add(PROFILE_FILE)  # the data's profile, drift and schema changes (mlpipe.contract)
ROOT_NAMES = {"artifact_root": "artifact root", "publish_uri": "publish location"}
FOLDER_RE = re.compile(rf"^(?P<family>[a-z]+)-[0-9a-f]{{{DIGITS}}}$")
SHOWN_SKIPPED = 20  # a warning names at most this many skipped entries; the result lists them all


def collect_status(
    artifact_root: str,
    publish_uri: str,
    *,
    first: str | None = None,
    last: str | None = None,
    store: Store,
) -> dict[str, Any]:
    """``{"runs": [{"run_date", "datasets", "models", "published"}], "skipped": [...]}`` for the dates in
    ``[first, last]``; ``skipped`` names each entry under a root that is not the pipeline's, as
    ``{"uri", "root", "relative", "reason"}`` (``relative``: its path under ``root``, as it is named there)."""
    for value in (first, last):
        if value is not None:
            parse_run_date(value)
    if first and last and last < first:
        raise InvalidRequestError(f"the range ends ({last}) before it starts ({first})")
    groups: dict[tuple[str, str, str], dict[str, StoredObject]] = defaultdict(dict)
    skipped: dict[str, dict[str, str]] = {}
    roots = _roots({"artifact_root": artifact_root, "publish_uri": publish_uri}, store=store)
    for root, roles, inner in roots:
        for item in store.list(root):
            if any(item.relative.startswith(prefix) for prefix in inner):
                continue  # the other root, inside this one: listed on its own
            found = classify(item.relative, roles)
            if isinstance(found, str):
                skipped[item.uri] = {"uri": item.uri, "root": root, "relative": item.relative, "reason": found}
                continue
            if found is None:
                continue
            run_date, family, folder, name = found
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
    listed = [skipped[uri] for uri in sorted(skipped)]
    warn_skipped(listed)
    return {"runs": result, "skipped": listed}


def _roots(named: dict[str, str], *, store: Store) -> list[tuple[str, set[str], list[str]]]:
    """Each distinct root once: ``(root, the roles it plays, the relative prefixes of the other roots inside it)``."""
    located: dict[tuple[str, str], tuple[str, set[str]]] = {}
    for role, root in named.items():
        scheme, location = store.check(root)
        key = (scheme, location.rstrip("/"))
        located.setdefault(key, (root, set()))[1].add(role)
    roots = []
    for (scheme, location), (root, roles) in located.items():
        inner = [
            other[len(location) + 1 :] + "/"
            for other_scheme, other in located
            if other_scheme == scheme and other.startswith(location + "/")
        ]
        roots.append((root, roles, inner))
    return roots


def classify(relative: str, roles: set[str]) -> tuple[str, str, str, str] | str | None:
    """``(run date, family, folder, file)`` for an entry of the pipeline under a root playing ``roles``; None for
    the champion's own files; otherwise why the entry is not the pipeline's."""
    parts = relative.split("/")
    if "publish_uri" in roles and (relative in (CHAMPION_FILE, CONTRACT_FILE) or parts[0] == HISTORY_DIR):
        return None
    reason = _not_ours(parts, roles)
    if reason is not None:
        return reason
    run_date, folder, name = parts
    return run_date, folder.split("-", 1)[0], folder, name


def _not_ours(parts: list[str], roles: set[str]) -> str | None:
    """Why ``<run date>/<family>-<identity>/<file>`` split at ``/`` is not the pipeline's, or None when it is."""
    if len(parts) != 3:
        return "not at <run date>/<family>-<identity>/<file>"
    run_date, folder, name = parts
    match = FOLDER_RE.match(folder)
    family = match["family"] if match else ""
    if not _is_run_date(run_date):
        return f"{run_date!r} is not a run date (YYYY-MM-DD)"
    if family not in ROOTS:
        return f"{folder!r} is not a folder the pipeline makes (<family>-<{DIGITS} hex digits>)"
    if ROOTS[family] not in roles:
        return f"a {family} folder, which belongs under the {ROOT_NAMES[ROOTS[family]]}"
    if name not in FILES[family]:
        return f"{name!r} is not a file the pipeline writes in a {family} folder"
    return None


def _is_run_date(text: str) -> bool:
    try:
        parse_run_date(text)
    except InvalidRequestError:
        return False
    return True


def warn_skipped(skipped: list[dict[str, str]]) -> None:
    """Log one warning naming the skipped entries (at most SHOWN_SKIPPED of them)."""
    if not skipped:
        return
    shown = "; ".join(describe_skipped(entry) for entry in skipped[:SHOWN_SKIPPED])
    more = f"; and {len(skipped) - SHOWN_SKIPPED} more" if len(skipped) > SHOWN_SKIPPED else ""
    LOG.warning(
        "skipped %d entries that are not the pipeline's (left as they are; move them out of the root to silence "
        "this): %s%s",
        len(skipped),
        shown,
        more,
    )


def describe_skipped(entry: dict[str, str]) -> str:
    """``'<relative>' in <root>: <reason>``, a skipped entry for people (the name as it is, not URL-escaped)."""
    return f"{entry['relative']!r} in {entry['root']}: {entry['reason']}"


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
        lineage = _read_json(files.get(LINEAGE_FILE), store=store)
        entry["made"] = _text(lineage.get("created_at")) or entry["made"]
        source = _text(section(lineage, "inputs").get("source"))
        entry["source"] = redact_url(source) if source is not None else None  # records made before redaction
        return entry
    card = _read_json(files.get(CARD_FILE), store=store)
    if state == "present" and main is not None and not _records(card, main, store=store):
        entry["state"] = "incomplete"
    record = section(card, "publication" if family == "published" else "lineage")
    entry["made"] = _text(record.get("created_at")) or entry["made"]
    accuracy = section(card, "cv_accuracy").get("mean")
    entry["cv_accuracy"] = accuracy if isinstance(accuracy, int | float) and not isinstance(accuracy, bool) else None
    entry["task"] = _text(card.get("task")) or "classification"
    entry["score_name"], entry["score"] = card_score(card) if card else ("cv_accuracy", None)
    if entry["score_name"] == "cv_accuracy" and entry["cv_accuracy"] is None:
        entry["score"] = None  # no card (or no score in it): nothing to show
    if entry["task"] == "regression":
        entry["rmse"] = section(card, "cv_metrics").get("rmse")
    estimator = section(card, "estimator")
    entry["estimator"] = _text(estimator.get("name"))
    entry["hyperparameters"] = section(estimator, "non_default_hyperparameters") or None
    if family == "model":
        entry["dataset"] = _text(section(section(card, "lineage"), "inputs").get("dataset"))
    else:
        entry["model"] = _text(section(record, "inputs").get("model"))
    return entry


def _text(value: Any) -> str | None:
    """``value`` when it is a string (what a card or a lineage record should hold there), else None."""
    return value if isinstance(value, str) else None


def _records(card: dict[str, Any], model: StoredObject, *, store: Store) -> bool:
    """Whether ``card`` records the sha256 of ``model``'s bytes."""
    recorded = card.get("model_sha256")
    if not isinstance(recorded, str):
        return False
    try:
        return store.target(model.uri).sha256() == recorded
    except StorageError:  # removed since the listing
        return False


def _read_json(item: StoredObject | None, *, store: Store) -> dict[str, Any]:
    if item is None:
        return {}
    try:
        value = json.loads(store.target(item.uri).read_bytes())
    except (ValueError, StorageError):  # unreadable, or removed since the listing: nothing known from it
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
                    score = entry.get("score", entry.get("cv_accuracy"))
                    shown = f"{score:.4f}" if isinstance(score, int | float) else "-"
                    params = _shown(entry.get("hyperparameters") or {})
                    what = "cv R²" if entry.get("score_name") == "cv_r2" else "cv"
                    detail = f"  {what} {shown}  {entry.get('estimator') or '-'} {params}"
                newest = "  (newest)" if entry.get("newest") else ""
                size = entry["size"] if entry["size"] is not None else "-"
                head = f"  {kind:<9} {entry['identity']:<22} {entry['state']:<10} {size:>9} B  {entry['made']}"
                lines.append(head + detail + newest)
                lines.append(f"            {entry['uri']}")
    if not lines:
        lines.append("nothing found")
    skipped = status.get("skipped") or []
    if skipped:
        lines.append(f"skipped {len(skipped)} entries that are not the pipeline's (left as they are):")
        lines.extend(f"  {describe_skipped(entry)}" for entry in skipped)
    return "\n".join(lines)
