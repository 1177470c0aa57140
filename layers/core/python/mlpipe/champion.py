"""The champion: one current model for consumers, at ``<publish location>/champion.json``.

The manifest::

    {"model_uri", "identity", "sha256", "run_date", "classes", "metrics": {"cv_accuracy", ...},
     "promoted_at", "promoted_by", "action": "promote" | "manual" | "rollback",
     "previous": <the previous champion's manifest, without its own previous> | null}

Every change is a compare-and-swap (``Target.replace_if``: ``If-Match`` on the ETag read, or
``If-None-Match: *`` for the first one, on S3; a lock file and an atomic rename locally) retried on
a conflict, so two executions promoting at once end with the newer one as champion and neither
write lost: each change is also recorded as its own object under ``champion-history/``, which
``champion_history`` lists oldest first.

Promotion rules (``promote``, called after a publish): a model that passed the gate becomes the
champion when its run date is the newest so far (a backfill of older dates publishes them but
does not move the champion; a second model for the same date, from changed hyperparameters or a
force, does). ``set_champion`` (``pipeline promote``) and ``rollback`` set it by hand.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from mlpipe.artifacts import Record, check_stored
from mlpipe.exceptions import IntegrityError, InvalidRequestError, StorageError, TargetChangedError, TargetExistsError
from mlpipe.storage import Store, Target, join_uri

CHAMPION_FILE = "champion.json"
HISTORY_DIR = "champion-history"
CAS_ATTEMPTS = 20
NOT_PROMOTED = "is not made the champion"
METRICS = ("cv_accuracy", "balanced_accuracy", "macro_f1", "training_accuracy")


@dataclass(frozen=True)
class Promotion:
    """What a promotion attempt did: whether the champion moved, why, and the champion afterwards."""

    promoted: bool
    reason: str
    champion: dict[str, Any] | None

    def as_dict(self, publish_uri: str) -> dict[str, Any]:
        """The promote step's result, for the run's summary."""
        champion = self.champion or {}
        return {
            "promoted": self.promoted,
            "reason": self.reason,
            "champion_uri": champion_uri(publish_uri),
            "model_uri": champion.get("model_uri"),
            "identity": champion.get("identity"),
        }


def champion_uri(publish_uri: str) -> str:
    """The manifest's URI under a publish location."""
    return join_uri(publish_uri, CHAMPION_FILE)


def read_champion(publish_uri: str, *, store: Store) -> dict[str, Any] | None:
    """The current champion's manifest, or None when there is none yet."""
    data, _ = store.target(champion_uri(publish_uri)).read_versioned()
    return _parse(data, champion_uri(publish_uri)) if data is not None else None


def champion_history(publish_uri: str, *, store: Store) -> list[dict[str, Any]]:
    """Every change of champion, oldest first (each a manifest, with its ``previous``)."""
    entries = []
    for item in store.list(store.join(publish_uri, HISTORY_DIR)):
        data = store.target(item.uri).read_bytes()
        entries.append(_parse(data, item.uri))
    return sorted(entries, key=lambda e: (e.get("promoted_at") or "", e.get("sequence") or 0))


def manifest_for(
    published: Target, card: dict[str, Any], *, run_date: str, promoted_by: str, action: str
) -> dict[str, Any]:
    """A manifest naming the published model ``published`` (with its card ``card``) as champion."""
    publication = card.get("publication") or {}
    metrics = {name: _metric(card, name) for name in METRICS}
    return {
        "model_uri": published.uri,
        "identity": publication.get("identity") or published.uri.rsplit("/", 2)[-2],
        "sha256": card["model_sha256"],
        "run_date": run_date,
        "classes": card.get("classes"),
        "estimator": (card.get("estimator") or {}).get("name"),
        "metrics": metrics,
        "promoted_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
        "promoted_by": promoted_by,
        "action": action,
        "previous": None,
    }


def promote(
    publish_uri: str,
    published_uri: str,
    run_date: str,
    *,
    promoted_by: str,
    max_regression: float | None = None,
    store: Store,
) -> Promotion:
    """Make the published model the champion if its run date is the newest so far (compare-and-swap).

    With ``max_regression``, the gate's rule is checked again against the champion found at the
    swap (it may have changed since the gate looked): a model more than that below a champion of
    the same label set is published but not promoted. A retried promote step that finds its own
    earlier promotion done (same model, same ``promoted_by``) reports it as promoted again.

    The manifest records the sha256 of the published model's bytes as read here (streamed, never
    unpickled): IntegrityError, and no promotion, when they are not what its card records.
    """
    published = store.target(published_uri)
    card = check_stored(published, consequence=NOT_PROMOTED)
    manifest = manifest_for(published, card, run_date=run_date, promoted_by=promoted_by, action="promote")

    def decide(current: dict[str, Any] | None) -> str | None:
        if current is None:
            return None
        if current.get("identity") == manifest["identity"]:
            if current.get("promoted_by") == promoted_by:
                return ""  # this execution's own promotion, done on an earlier attempt
            return f"already the champion ({current['identity']})"
        theirs, ours = (current.get("metrics") or {}).get("cv_accuracy"), manifest["metrics"]["cv_accuracy"]
        same_labels = sorted(map(str, current.get("classes") or [])) == sorted(map(str, manifest.get("classes") or []))
        if (
            max_regression is not None
            and same_labels
            and isinstance(theirs, int | float)
            and isinstance(ours, int | float)
            and ours < theirs - max_regression
        ):
            return (
                f"not promoted: its CV accuracy {ours:.4f} is more than max_regression {max_regression:.4f} below "
                f"the champion {current.get('identity')}'s {theirs:.4f} (the champion changed after the gate)"
            )
        if str(current.get("run_date")) > run_date:
            newer = current.get("run_date")
            return f"not promoted: the champion {current.get('identity')} is of a newer run date ({newer} > {run_date})"
        return None

    return _swap(publish_uri, manifest, decide, store=store)


def set_champion(publish_uri: str, published_uri: str, *, promoted_by: str, store: Store) -> Promotion:
    """Make a published model the champion by hand, whatever its date, after checking its bytes against its card."""
    published = store.target(published_uri)
    if not published.exists():
        raise InvalidRequestError(f"there is no published model at {published.uri}")
    card = check_stored(published, consequence=NOT_PROMOTED)
    run_date = published.uri.rsplit("/", 3)[-3]
    manifest = manifest_for(published, card, run_date=run_date, promoted_by=promoted_by, action="manual")
    return _swap(publish_uri, manifest, lambda current: None, store=store)


def rollback(publish_uri: str, *, promoted_by: str, store: Store) -> Promotion:
    """Make the previous champion the champion again (its ``previous`` becomes the one rolled back).

    IntegrityError, and no change, when the previous champion's model (streamed, never unpickled) is
    not the one its manifest records, or its card does not describe it.
    """
    for _ in range(CAS_ATTEMPTS):
        target = store.target(champion_uri(publish_uri))
        data, version = target.read_versioned()
        current = _parse(data, target.uri) if data is not None else None
        if current is None or not current.get("previous"):
            raise InvalidRequestError(f"{target.uri} has no previous champion to roll back to")
        previous = current["previous"]
        if not isinstance(previous, dict) or not isinstance(previous.get("model_uri"), str):
            raise IntegrityError(f"{target.uri}'s previous champion names no model; restore it from {HISTORY_DIR}/")
        record = Record(previous.get("sha256"), f"the previous champion in {target.uri}")
        check_stored(store.target(previous["model_uri"]), consequence=NOT_PROMOTED, record=record)
        manifest = dict(previous) | {
            "promoted_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            "promoted_by": promoted_by,
            "action": "rollback",
            "previous": _without_previous(current),
        }
        try:
            _write(target, publish_uri, manifest, version, store=store)
        except TargetChangedError:
            continue
        return Promotion(True, f"rolled back to {manifest['identity']}", manifest)
    raise StorageError(f"cannot roll back {champion_uri(publish_uri)}: it kept changing ({CAS_ATTEMPTS} attempts)")


def _swap(publish_uri: str, manifest: dict[str, Any], decide: Any, *, store: Store) -> Promotion:
    target = store.target(champion_uri(publish_uri))
    for _ in range(CAS_ATTEMPTS):
        data, version = target.read_versioned()
        current = _parse(data, target.uri) if data is not None else None
        refusal = decide(current)
        if refusal == "" and current is not None:
            record_history(publish_uri, current, store=store)  # in case the first attempt stopped short
            return Promotion(True, f"promoted {current['identity']} (on an earlier attempt of this step)", current)
        if refusal is not None:
            return Promotion(False, refusal, current)
        new = manifest | {
            "promoted_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            "previous": _without_previous(current) if current else None,
        }
        try:
            _write(target, publish_uri, new, version, store=store)
        except TargetChangedError:
            continue  # someone else changed the champion since we read it: decide again on the new one
        what = "the first champion" if current is None else f"the champion, replacing {current.get('identity')}"
        return Promotion(True, f"promoted {new['identity']} to {what}", new)
    raise StorageError(f"cannot update {target.uri}: it kept changing ({CAS_ATTEMPTS} attempts)")


def _write(target: Target, publish_uri: str, manifest: dict[str, Any], version: str | None, *, store: Store) -> None:
    document = (json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    target.replace_if(document, version)
    record_history(publish_uri, manifest, store=store)


def record_history(publish_uri: str, manifest: dict[str, Any], *, store: Store) -> None:
    """Write the history entry of a change of champion, unless it is there already.

    Its name is made from the manifest alone (when, what, by whom), so a retried promote step that
    finds its own earlier swap done writes the same entry, once.
    """
    stamp = manifest["promoted_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    who = hashlib.sha256(str(manifest.get("promoted_by")).encode()).hexdigest()[:6]
    name = f"{stamp}-{manifest['identity']}-{who}.json"
    document = (json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    with contextlib.suppress(TargetExistsError):
        store.target(store.join(publish_uri, HISTORY_DIR, name)).write_bytes(document)


def _without_previous(manifest: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if manifest is None else {k: v for k, v in manifest.items() if k != "previous"} | {"previous": None}


def _metric(card: dict[str, Any], name: str) -> float | None:
    if name == "cv_accuracy":
        return (card.get("cv_accuracy") or {}).get("mean")
    if name == "training_accuracy":
        return card.get("training_accuracy")
    return (card.get("cv_metrics") or {}).get(name)


def _parse(data: bytes | None, uri: str) -> dict[str, Any]:
    try:
        value = json.loads(data or b"")
    except ValueError as exc:
        raise IntegrityError(f"{uri} is not valid JSON ({exc}); restore it from champion-history/") from exc
    if not isinstance(value, dict) or "model_uri" not in value:
        raise IntegrityError(f"{uri} is not a champion manifest (no model_uri); restore it from champion-history/")
    return value
