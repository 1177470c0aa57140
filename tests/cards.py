"""Model cards and published models for tests, their bytes and sha256 consistent, as train and upload leave them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from mlpipe.artifacts import CARD_FILE
from mlpipe.steps import OUTPUTS
from mlpipe.storage import join_uri
from tests.stores import target


def card(
    payload: bytes,
    *,
    accuracy: float | None = 0.9,
    classes: Sequence[Any] = ("a", "b"),
    identity: str | None = None,
    created_at: str | None = None,
    dataset: str | None = None,
) -> dict[str, Any]:
    """A card (metrics.json) recording ``payload``'s sha256; ``identity`` and ``created_at`` as publishing adds them;
    ``dataset``: the identity of the dataset it was trained on, in its lineage."""
    found: dict[str, Any] = {
        "model_sha256": hashlib.sha256(payload).hexdigest(),
        "cv_accuracy": {"mean": accuracy} if accuracy is not None else {},
        "classes": list(classes),
        "estimator": {"name": "svc"},
    }
    if identity is not None or created_at is not None:
        found["publication"] = {"identity": identity, "created_at": created_at}
    if dataset is not None:
        found["lineage"] = {"inputs": {"dataset": dataset}}
    return found


def publish_fake(
    publish_root: str,
    run_date: str,
    name: str,
    *,
    accuracy: float | None = 0.9,
    classes: Sequence[Any] = ("a", "b"),
    created_at: str | None = None,
    dataset: str | None = None,
) -> str:
    """A published model ``published-<name>`` of ``run_date`` under ``publish_root`` and its card; its URI."""
    payload = f"model {name}".encode()
    identity = f"published-{name}"
    uri = join_uri(publish_root, run_date, identity, OUTPUTS["upload"].file)
    document = card(
        payload, accuracy=accuracy, classes=classes, identity=identity, created_at=created_at, dataset=dataset
    )
    target(uri).sibling(CARD_FILE).write_bytes(json.dumps(document).encode())
    target(uri).write_bytes(payload)
    return uri
