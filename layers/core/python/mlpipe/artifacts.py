"""The model and its metrics.json: how they are written together and how the recorded sha256 is read.

A model (trained or published) is complete when ``model.pkl`` is there and its card records the
model's sha256 (``model_complete``). Both are written in that order, the model first and then the
card, so a write killed between the two leaves a model without its card: incomplete, and completed
by the next run of the date (``write_model`` finds the same model stored and writes its card).
Never the reverse: a card alone is incomplete everywhere.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from mlpipe.exceptions import IntegrityError, TargetExistsError
from mlpipe.storage import Target

CARD_FILE = "metrics.json"
SHA256 = re.compile(r"[0-9a-f]{64}")


def metrics_target(model: Target) -> Target:
    """metrics.json (the model's card), beside ``model``."""
    return model.sibling(CARD_FILE)


def write_model(
    model: Target,
    payload: bytes,
    metrics: dict[str, Any],
    *,
    metadata: dict[str, str] | None = None,
) -> bool:
    """Write model.pkl (only if absent), then make sure metrics.json describes it; True if this call wrote the model.

    The model is written first and conditionally, so exactly one of several concurrent writers
    wins it. Training is deterministic, so a writer that loses normally finds the same bytes
    stored; a stored model that differs and that no metrics.json describes is an IntegrityError,
    never a silent overwrite. A model found stored without its card (a write killed between the
    two) gets its card now: that completes it.
    """
    sidecar = metrics_target(model)
    sha = metrics["model_sha256"]
    document = card_document(metrics)  # before anything is written: ValueError for a card that is not JSON
    try:
        model.write_bytes(payload, metadata=metadata)
        wrote = True
    except TargetExistsError:
        wrote = False
        stored = model.sha256()
        if stored != sha:
            if records(sidecar, stored):
                return False  # another training's model, described by its own metrics.json
            raise IntegrityError(
                f"{model.uri} exists with sha256 {stored}, but this training produced {sha} and "
                f"{sidecar.uri} does not record the stored one; delete {model.uri} and rerun"
            ) from None
    _ensure_metrics(sidecar, metrics, document)
    return wrote


def card_document(metrics: dict[str, Any]) -> bytes:
    """metrics.json's bytes: strict JSON (ValueError for NaN or infinity, which JSON parsers refuse)."""
    return (json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def _ensure_metrics(sidecar: Target, metrics: dict[str, Any], document: bytes) -> None:
    """Write metrics.json (``document``) unless it already records this model; replace it only when it is stale."""
    sha = metrics["model_sha256"]
    if records(sidecar, sha):
        return
    try:
        sidecar.write_bytes(document)
    except TargetExistsError:
        if records(sidecar, sha):
            return  # a concurrent writer of the same model got there first
        # Stale: it describes a model that was deleted (the user removed only model.pkl).
        sidecar.write_bytes(document, overwrite=True)


def records(sidecar: Target, sha256: str) -> bool:
    """True when metrics.json exists and records ``sha256`` as the model's checksum."""
    if not sidecar.exists():
        return False
    try:
        card = json.loads(sidecar.read_bytes())
    except ValueError:
        return False
    return isinstance(card, dict) and card.get("model_sha256") == sha256


def read_metrics(model: Target) -> dict[str, Any]:
    """metrics.json beside ``model``, parsed; IntegrityError when it is missing or unreadable."""
    return read_card(model)[0]


def read_card(model: Target) -> tuple[dict[str, Any], bytes]:
    """metrics.json beside ``model``, parsed, and its bytes as read; IntegrityError when it is missing or unreadable."""
    sidecar = metrics_target(model)
    if not sidecar.exists():
        raise IntegrityError(
            f"{sidecar.uri} is missing, so {model.uri} has no recorded sha256; delete the model and rerun to retrain"
        )
    data = sidecar.read_bytes()
    try:
        metrics = json.loads(data)
        if not isinstance(metrics, dict) or not isinstance(metrics.get("model_sha256"), str):
            raise ValueError("it has no model_sha256")
    except ValueError as exc:
        raise IntegrityError(
            f"{sidecar.uri} is not a valid metrics file ({exc}); delete the model and rerun to retrain"
        ) from exc
    return metrics, data


@dataclass(frozen=True)
class Record:
    """A sha256 recorded for a model somewhere stronger than its own card (the champion manifest), and where."""

    sha256: Any  # as read: checked to be a sha256 before it is trusted
    where: str  # "champion.json at s3://...": named in the error

    def check(self, model: Target, actual: str, consequence: str) -> None:
        """IntegrityError unless this record is a sha256 and ``actual`` (the sha256 of ``model``'s bytes) is it."""
        if not (isinstance(self.sha256, str) and SHA256.fullmatch(self.sha256)):
            raise IntegrityError(
                f"{self.where} records no valid sha256 for {model.uri} ({self.sha256!r}), so {model.uri} cannot be "
                f"checked and {consequence}; restore {self.where} from its history or promote a model again"
            )
        if actual != self.sha256:
            raise IntegrityError(
                f"{model.uri} has sha256 {actual}, but {self.where} records {self.sha256}: the model was replaced "
                f"after it was recorded there and {consequence}; restore it from the bucket's versions, or promote "
                "another model"
            )


@dataclass(frozen=True)
class CheckedModel:
    """A model's bytes, read once, and its card, once the bytes matched every record (nothing unpickled yet)."""

    payload: bytes
    card: dict[str, Any]
    card_bytes: bytes  # metrics.json exactly as read


def read_checked(model: Target, *, consequence: str, record: Record | None = None) -> CheckedModel:
    """The model's bytes, read once, and its card, once the bytes match ``record`` (when given) and the card.

    The bytes returned are the bytes checked: a caller unpickles (or copies) them, never the object
    read again. IntegrityError otherwise (``consequence`` says what is then not done, e.g. "it is
    not published"): ``record`` (the stronger record, e.g. the champion manifest) is checked first,
    then the card, which must describe the same bytes.
    """
    card, card_bytes = read_card(model)
    payload = model.read_bytes()
    _check_bytes(model, hashlib.sha256(payload).hexdigest(), card, record, consequence, "training", "rerun to retrain")
    return CheckedModel(payload, card, card_bytes)


def check_stored(model: Target, *, consequence: str, record: Record | None = None) -> dict[str, Any]:
    """The model's card, once the stored bytes (streamed, never loaded) match ``record`` (when given) and the card.

    For the paths that name a model without loading it (promotion, the report). IntegrityError
    otherwise, and when the model is missing beside its card.
    """
    card = read_metrics(model)
    if not model.exists():
        raise IntegrityError(f"{model.uri} is missing (its card is there) and {consequence}; publish it again")
    _check_bytes(model, model.sha256(), card, record, consequence, "it was written", "publish again")
    return card


def _check_bytes(
    model: Target, actual: str, card: dict[str, Any], record: Record | None, consequence: str, since: str, remedy: str
) -> None:
    """IntegrityError unless the sha256 ``actual`` matches ``record`` (when given, first) and then the card."""
    if record is not None:
        record.check(model, actual, consequence)
    if actual != card["model_sha256"]:
        raise IntegrityError(
            f"{model.uri} has sha256 {actual}, but its card (metrics.json) records {card['model_sha256']}: the model "
            f"or its card was corrupted or replaced after {since} and {consequence}; delete it and {remedy}"
        )


def check_not_replaced(model: Target, *, consequence: str) -> None:
    """IntegrityError when model.pkl exists and its card records another sha256 than its bytes have.

    Such a model is incomplete (``model_complete``), but no rerun can complete it: either the model
    or its card was replaced or corrupted after the write, and which one cannot be told. A model
    without its card, a card without its model, or a card that records no sha256 passes.
    """
    sidecar = metrics_target(model)
    if not (model.exists() and sidecar.exists()):
        return
    try:
        card = json.loads(sidecar.read_bytes())
    except ValueError:
        return
    recorded = card.get("model_sha256") if isinstance(card, dict) else None
    if not isinstance(recorded, str):
        return
    actual = model.sha256()
    if actual != recorded:
        raise IntegrityError(
            f"{model.uri} has sha256 {actual}, but its card (metrics.json) records {recorded}: the model or its card "
            f"was corrupted or replaced after training and {consequence}; delete both and rerun to retrain"
        )


def model_complete(model: Target) -> bool:
    """A model target's completeness (trained or published): model.pkl exists and its card (metrics.json) records
    its sha256. A card alone, a model alone, or a card describing other bytes is incomplete."""
    return model.exists() and records(metrics_target(model), model.sha256())
