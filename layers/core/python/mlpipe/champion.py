"""The champion: one current model for consumers, at ``<publish location>/champion.json``.

The manifest::

    {"model_uri", "identity", "sha256", "run_date", "classes", "metrics": {"score", "score_name", "cv_accuracy", ...},
     "promoted_at", "promoted_by", "action": "promote" | "manual" | "rollback",
     "previous": <the previous champion's manifest, without its own previous> | null,
     "contract": {"uri", "sha256"} | null}

``contract`` names the champion's data contract (``contract.json`` beside it, ``mlpipe.contract``),
written at every change of champion (promotion, ``pipeline promote``, rollback) from the new
champion's card: the contract always follows the champion. A model whose card records an accepted
schema change (``schema_change``) is never promoted automatically (``mlpipe.contract.promotion_block``).

Every change is a compare-and-swap (``Target.replace_if``: ``If-Match`` on the ETag read, or
``If-None-Match: *`` for the first one, on S3; a lock file and an atomic rename locally) retried on
a conflict, so two executions promoting at once end with the newer one as champion and neither
write lost: each change is also recorded as its own object under ``champion-history/``, which
``champion_history`` lists oldest first.

Promotion rules (``promote``, called after a publish): a model that passed the gate becomes the
champion when its run date is the newest so far (a backfill of older dates publishes them but
does not move the champion); a second model on the same dataset (same dataset identity: changed
hyperparameters, another estimator, a force) does only when its score is at least the champion's
(``score_rule``); a model whose label set or feature schema differs from the champion's never does
(``mlpipe.gate.schema_changes``). ``set_champion`` (``pipeline promote``) and ``rollback`` set it by
hand. Each named model has its own (``mlpipe.naming``): the publish location here is the model's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from mlpipe.artifacts import Record, check_stored
from mlpipe.contract import contract_document, contract_reference, promotion_block, write_contract
from mlpipe.exceptions import (
    IntegrityError,
    InvalidRequestError,
    MissingInputError,
    StorageError,
    TargetChangedError,
    TargetExistsError,
)
from mlpipe.gate import card_schema, card_score, manifest_score, schema_changes, score_words, section
from mlpipe.naming import CHAMPION_FILE, HISTORY_DIR  # the champion's names, kept in naming (a lower layer)
from mlpipe.storage import Store, Target, join_uri

CAS_ATTEMPTS = 20
NOT_PROMOTED = "is not made the champion"
METRICS = ("cv_accuracy", "balanced_accuracy", "macro_f1", "training_accuracy")
REGRESSION_METRICS = ("cv_r2", "rmse", "mae", "training_r2")
# A history entry's name, as record_history makes it: when, which model, a short hash of who.
HISTORY_NAME_RE = re.compile(r"^(?P<stamp>\d{8}T\d{6}\.\d{6}Z)-(?P<identity>[^/]+)-(?P<who>[0-9a-f]{6})\.json$")
LOG = logging.getLogger(__name__)


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
    """Every change of champion, oldest first (each a manifest, with its ``previous``); what is not a history
    entry is skipped with a warning (``read_history``)."""
    return read_history(publish_uri, store=store)[0]


def read_history(publish_uri: str, *, store: Store) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """``(entries, skipped)``: every change of champion, oldest first, and each object under ``champion-history/``
    that is not one (another name, a folder, not a manifest) as ``{"uri", "root", "relative", "reason"}``, named
    in a warning too.

    A stray object there (a note, a copy, a file cut short by hand) never breaks the history.
    """
    entries, skipped = [], []
    for item in store.list(store.join(publish_uri, HISTORY_DIR)):
        reason = None
        if history_name(item.relative) is None:
            reason = "not a history entry's name (<time>-<identity>-<who>.json)"
        else:
            try:
                entry = _parse(store.target(item.uri).read_bytes(), item.uri)
            except IntegrityError as exc:
                reason = str(exc).split(";", 1)[0].removeprefix(f"{item.uri} ")
            else:
                reason = _not_an_entry(entry)
                if reason is None:
                    entries.append(entry)
        if reason is not None:
            relative = f"{HISTORY_DIR}/{item.relative}"
            skipped.append({"uri": item.uri, "root": publish_uri, "relative": relative, "reason": reason})
    if skipped:
        shown = "; ".join(f"{entry['relative']!r} ({entry['reason']})" for entry in skipped)
        LOG.warning("skipped %d objects in the champion's history that are not its entries: %s", len(skipped), shown)
    entries.sort(key=lambda e: (e.get("promoted_at") or "", e.get("sequence") or 0))
    return entries, skipped


def _not_an_entry(manifest: dict[str, Any]) -> str | None:
    """Why a parsed manifest cannot be a history entry (a field of the wrong type), or None when it can."""
    for name in ("model_uri", "identity", "promoted_at"):
        if not isinstance(manifest.get(name), str):
            return f"is not a champion manifest ({name} is not a string)"
    for name in ("metrics", "previous"):
        if manifest.get(name) is not None and not isinstance(manifest.get(name), dict):
            return f"is not a champion manifest ({name} is not an object)"
    return None


def history_name(relative: str) -> tuple[dt.datetime, str] | None:
    """``(when, identity)`` from a history entry's name (``record_history``), or None for any other name."""
    match = HISTORY_NAME_RE.match(relative)
    if match is None:
        return None
    try:
        when = dt.datetime.strptime(match["stamp"], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return when, match["identity"]


def manifest_for(
    published: Target,
    card: dict[str, Any],
    *,
    run_date: str,
    promoted_by: str,
    action: str,
    model: str | None = None,
) -> dict[str, Any]:
    """A manifest naming the published model ``published`` (with its card ``card``) as champion of ``model``."""
    publication = card.get("publication") or {}
    names = REGRESSION_METRICS if card.get("task") == "regression" else METRICS
    metrics: dict[str, Any] = {name: _metric(card, name) for name in names}
    metrics["score_name"], metrics["score"] = card_score(card)
    inputs = section(section(card, "lineage"), "inputs")
    schema = card_schema(card)
    return {
        "model": model,
        "model_uri": published.uri,
        "identity": publication.get("identity") or published.uri.rsplit("/", 2)[-2],
        "sha256": card["model_sha256"],
        "run_date": run_date,
        "task": schema["task"],
        "classes": card.get("classes"),
        "features": schema["features"],
        "dataset_identity": inputs.get("dataset"),
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
    model: str | None = None,
    store: Store,
) -> Promotion:
    """Make the published model the champion if its run date is the newest so far and, on the same dataset,
    its score is at least the champion's, and its schema is the champion's (compare-and-swap).

    With ``max_regression``, the gate's rule is checked again against the champion found at the
    swap (it may have changed since the gate looked): a model more than that below a champion of
    the same label set is published but not promoted. A retried promote step that finds its own
    earlier promotion done (same model, same ``promoted_by``) reports it as promoted again.

    The manifest records the sha256 of the published model's bytes as read here (streamed, never
    unpickled): IntegrityError, and no promotion, when they are not what its card records.
    MissingInputError when the model is missing (a card without its model is incomplete).
    """
    published = store.target(published_uri)
    if not published.exists():
        raise MissingInputError(
            f"the published model {published.uri} is missing (a card without its model is incomplete), so it "
            f"{NOT_PROMOTED}; a new execution for this run date completes the publish and promotes it"
        )
    card = check_stored(published, consequence=NOT_PROMOTED)
    manifest = manifest_for(published, card, run_date=run_date, promoted_by=promoted_by, action="promote", model=model)
    blocked = promotion_block(card)  # its data changed the contract's schema (on_schema_change: accept)
    if blocked is not None:
        return Promotion(False, blocked, read_champion(publish_uri, store=store))

    def decide(current: dict[str, Any] | None) -> str | None:
        if current is None:
            return None
        if current.get("identity") == manifest["identity"]:
            if current.get("promoted_by") == promoted_by:
                return ""  # this execution's own promotion, done on an earlier attempt
            return f"already the champion ({current['identity']})"
        return (
            _schema_rule(current, manifest)
            or _regression_rule(current, manifest, max_regression)
            or _date_rule(current, run_date)
            or score_rule(current, manifest)
        )

    return _swap(publish_uri, manifest, card, decide, store=store)


def _schema_rule(current: dict[str, Any], manifest: dict[str, Any]) -> str | None:
    """A model whose label set or feature schema differs from the champion's is never promoted automatically."""
    changes = schema_changes(current, manifest)
    if not changes:
        return None
    return (
        f"not promoted: its schema differs from the champion {current.get('identity')}'s ({'; '.join(changes)}); "
        "promote it by hand (pipeline promote) if consumers are ready for that"
    )


def _date_rule(current: dict[str, Any], run_date: str) -> str | None:
    """A model of an older run date than the champion's (a backfill) is published, not promoted."""
    if str(current.get("run_date")) > run_date:
        newer = current.get("run_date")
        return f"not promoted: the champion {current.get('identity')} is of a newer run date ({newer} > {run_date})"
    return None


def _regression_rule(current: dict[str, Any], manifest: dict[str, Any], max_regression: float | None) -> str | None:
    """The gate's max_regression rule checked again against the champion found at the swap, on the task's score."""
    (their_name, theirs), (our_name, ours) = manifest_score(current), manifest_score(manifest)
    same_labels = their_name == our_name and sorted(map(str, current.get("classes") or [])) == sorted(
        map(str, manifest.get("classes") or [])
    )
    if max_regression is None or not same_labels or theirs is None or ours is None or ours >= theirs - max_regression:
        return None
    return (
        f"not promoted: its {score_words(our_name)} {ours:.4f} is more than max_regression {max_regression:.4f} "
        f"below the champion {current.get('identity')}'s {theirs:.4f} (the champion changed after the gate)"
    )


def score_rule(current: dict[str, Any], manifest: dict[str, Any]) -> str | None:
    """The same-dataset rule: why ``manifest``'s model does not replace the champion ``current`` trained on the same
    dataset (same dataset identity) with a higher score, else None. Newer data is not compared here."""
    same = manifest.get("dataset_identity")
    if not same or current.get("dataset_identity") != same:
        return None
    name, ours = manifest_score(manifest)
    their_name, theirs = manifest_score(current)
    if ours is None or theirs is None or their_name != name or ours >= theirs:
        return None
    return (
        f"not promoted: its {score_words(name)} {ours:.4f} is below the champion's {theirs:.4f} on the same dataset "
        f"({same}; the champion is {current.get('identity')}); it stays published: pipeline promote makes it the "
        "champion by hand"
    )


def set_champion(
    publish_uri: str, published_uri: str, *, promoted_by: str, model: str | None = None, store: Store
) -> Promotion:
    """Make a published model the champion by hand, whatever its date or score, after checking its bytes against its
    card. When its label set or feature schema differs from the champion's, the reason says what changes for
    consumers."""
    published = store.target(published_uri)
    if not published.exists():
        raise InvalidRequestError(f"there is no published model at {published.uri}")
    card = check_stored(published, consequence=NOT_PROMOTED)
    run_date = published.uri.rsplit("/", 3)[-3]
    manifest = manifest_for(published, card, run_date=run_date, promoted_by=promoted_by, action="manual", model=model)
    changes: list[str] = []

    def decide(current: dict[str, Any] | None) -> None:
        changes[:] = schema_changes(current, manifest)

    result = _swap(publish_uri, manifest, card, decide, store=store)
    if result.promoted and changes:
        return Promotion(True, f"{result.reason}{_for_consumers(changes)}", result.champion)
    return result


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
        card = check_stored(store.target(previous["model_uri"]), consequence=NOT_PROMOTED, record=record)
        manifest = dict(previous) | {
            "promoted_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            "promoted_by": promoted_by,
            "action": "rollback",
            "previous": _without_previous(current),
        }
        try:
            _write(target, publish_uri, manifest, card, version, store=store)
        except TargetChangedError:
            continue
        changes = schema_changes(current, manifest)
        return Promotion(True, f"rolled back to {manifest['identity']}{_for_consumers(changes)}", manifest)
    raise StorageError(f"cannot roll back {champion_uri(publish_uri)}: it kept changing ({CAS_ATTEMPTS} attempts)")


def _swap(publish_uri: str, manifest: dict[str, Any], card: dict[str, Any], decide: Any, *, store: Store) -> Promotion:
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
        again = current is not None and current.get("model_uri") == manifest["model_uri"]
        new = manifest | {
            "promoted_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            # The champion promoted again (by hand, e.g. to write its contract again) keeps its previous one, so a
            # rollback still goes back to the model before it, never to itself.
            "previous": (current or {}).get("previous") if again else _without_previous(current) if current else None,
        }
        try:
            _write(target, publish_uri, new, card, version, store=store)
        except TargetChangedError:
            continue  # someone else changed the champion since we read it: decide again on the new one
        return Promotion(True, _promoted_words(new, current, again=again), new)
    raise StorageError(f"cannot update {target.uri}: it kept changing ({CAS_ATTEMPTS} attempts)")


def _for_consumers(changes: list[str]) -> str:
    """What a change of champion by hand changes for its consumers, as the end of its reason ("" when nothing)."""
    return f"; for consumers of the champion: {'; '.join(changes)}" if changes else ""


def _promoted_words(new: dict[str, Any], current: dict[str, Any] | None, *, again: bool) -> str:
    if again:
        previous = (new.get("previous") or {}).get("identity")
        return (
            f"{new['identity']} was the champion already: its manifest and data contract are written again; "
            f"a rollback still goes to {previous or 'no earlier champion'}"
        )
    what = "the first champion" if current is None else f"the champion, replacing {current.get('identity')}"
    return f"promoted {new['identity']} to {what}"


def _write(
    target: Target,
    publish_uri: str,
    manifest: dict[str, Any],
    card: dict[str, Any],
    version: str | None,
    *,
    store: Store,
) -> None:
    """Swap the manifest in; then write the new champion's data contract (made from its ``card``, checked against its
    bytes by the caller), whose sha256 the manifest records."""
    contract = contract_document(manifest, card)  # None when the card has no data profile
    manifest["contract"] = None if contract is None else contract_reference(publish_uri, contract)
    document = (json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    target.replace_if(document, version)
    if contract is not None:
        # After the swap: a promotion that stops here leaves a contract.json that is not the one the manifest
        # records, and mlpipe.contract.contract_for makes the right one again from the champion's card.
        write_contract(publish_uri, contract, store=store)
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
    if name in ("cv_accuracy", "cv_r2"):
        return (card.get(name) or {}).get("mean")
    if name in ("training_accuracy", "training_r2"):
        return card.get(name)
    return (card.get("cv_metrics") or {}).get(name)


def _parse(data: bytes | None, uri: str) -> dict[str, Any]:
    try:
        value = json.loads(data or b"")
    except ValueError as exc:
        raise IntegrityError(f"{uri} is not valid JSON ({exc}); restore it from champion-history/") from exc
    if not isinstance(value, dict) or "model_uri" not in value:
        raise IntegrityError(f"{uri} is not a champion manifest (no model_uri); restore it from champion-history/")
    return value
