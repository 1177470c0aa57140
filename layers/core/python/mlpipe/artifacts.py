"""The model and its metrics.json: how they are written together and how the recorded sha256 is read."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mlpipe.exceptions import IntegrityError, TargetExistsError
from mlpipe.storage import Target

CARD_FILE = "metrics.json"


def metrics_target(model: Target) -> Target:
    """metrics.json (the model's card), beside ``model``."""
    return model.sibling(CARD_FILE)


def write_model(
    model: Target,
    payload: bytes,
    metrics: dict[str, Any],
    *,
    metadata: dict[str, str] | None = None,
    metrics_first: bool = False,
) -> bool:
    """Write model.pkl (only if absent), then make sure metrics.json describes it; True if this call wrote the model.

    The model is written first and conditionally, so exactly one of several concurrent writers
    wins it. Training is deterministic, so a writer that loses normally finds the same bytes
    stored; a stored model that differs and that no metrics.json describes is an IntegrityError,
    never a silent overwrite.

    With ``metrics_first`` (publishing, where the model's bytes are fixed before the write),
    metrics.json is written first, so that a model visible to consumers always has its metrics.
    """
    sidecar = metrics_target(model)
    sha = metrics["model_sha256"]
    document = card_document(metrics)  # before anything is written: ValueError for a card that is not JSON
    if metrics_first:
        _ensure_metrics(sidecar, metrics, document)
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
        return bool(json.loads(sidecar.read_bytes()).get("model_sha256") == sha256)
    except (ValueError, AttributeError):
        return False


def read_metrics(model: Target) -> dict[str, Any]:
    """metrics.json beside ``model``, parsed; IntegrityError when it is missing or unreadable."""
    sidecar = metrics_target(model)
    if not sidecar.exists():
        raise IntegrityError(
            f"{sidecar.uri} is missing, so {model.uri} has no recorded sha256; delete the model and rerun to retrain"
        )
    try:
        metrics = json.loads(sidecar.read_bytes())
        if not isinstance(metrics, dict) or not isinstance(metrics.get("model_sha256"), str):
            raise ValueError("it has no model_sha256")
    except ValueError as exc:
        raise IntegrityError(
            f"{sidecar.uri} is not a valid metrics file ({exc}); delete the model and rerun to retrain"
        ) from exc
    return metrics


def read_checked(model: Target, *, consequence: str) -> tuple[bytes, dict[str, Any]]:
    """The model's bytes and its card, once the bytes match the sha256 the card records.

    IntegrityError otherwise (``consequence`` says what is then not done, e.g. "it is not published").
    """
    card = read_metrics(model)
    payload = model.read_bytes()
    actual = hashlib.sha256(payload).hexdigest()
    if actual != card["model_sha256"]:
        raise IntegrityError(
            f"{model.uri} has sha256 {actual}, but its card (metrics.json) records {card['model_sha256']}: the model "
            f"was corrupted or replaced after training and {consequence}; delete it and rerun to retrain"
        )
    return payload, card


def model_complete(model: Target) -> bool:
    """A model target's completeness (trained or published): model.pkl and metrics.json both exist."""
    return model.exists() and metrics_target(model).exists()
