"""Publish the trained model to its final location, refusing one that does not match its recorded sha256."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlpipe.artifacts import read_checked, write_model
from mlpipe.storage import Target


@dataclass(frozen=True)
class PublishResult:
    """Whether this call wrote the published model, and the sha256 it carries."""

    wrote: bool
    sha256: str


def publish_model(model: Target, published: Target, *, publication: dict[str, Any] | None = None) -> PublishResult:
    """Copy ``model`` (and its card) to ``published`` after checking the model's sha256.

    ``publication`` (a lineage record) becomes the published card's ``publication`` section, with
    the model's URI and sha256 as its input.

    Raises IntegrityError when metrics.json is missing or records another sha256 than the model's
    bytes have (the model was corrupted or replaced after training): nothing is published then.
    """
    checked = read_checked(model, consequence="is not published")
    payload, metrics = checked.payload, checked.card
    actual = metrics["model_sha256"]
    if publication is not None:
        metrics = metrics | {"publication": publication | {"input_targets": [{"uri": model.uri, "sha256": actual}]}}
    wrote = write_model(
        published,
        payload,
        metrics,
        metadata={"sha256": actual, "scikit-learn-version": str(metrics.get("scikit_learn_version"))},
        metrics_first=True,
    )
    return PublishResult(wrote=wrote, sha256=actual)
