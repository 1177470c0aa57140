"""Load a published (or stored) model for a consumer, refusing one that is not what its card says.

A pickle runs code when it is loaded: load only models from your own bucket or directory.
``load_model`` and ``load_champion`` are the consumer's API: called on a person's machine or in
their service, they read through ``Store.on_this_machine()`` unless given a store.
"""

from __future__ import annotations

import pickle
from typing import Any

from mlpipe.artifacts import read_checked
from mlpipe.champion import champion_uri, read_champion
from mlpipe.exceptions import IncompatibleModelError, IntegrityError
from mlpipe.storage import Store


def load_model(uri: str, *, store: Store | None = None) -> tuple[Any, dict[str, Any]]:
    """``(model, card)`` for the model.pkl at ``uri`` (``s3://...``, ``file://...`` or a path).

    Raises IntegrityError when the card (metrics.json beside it) is missing or the model's bytes do
    not match the sha256 it records, and IncompatibleModelError when this environment's
    scikit-learn is not the version the model was trained with (pickles are not portable across
    versions). Nothing is unpickled before both checks pass.
    """
    import sklearn

    model = (store or Store.on_this_machine()).target(uri)
    if not model.exists():
        raise IntegrityError(f"there is no model at {model.uri}")
    payload, card = read_checked(model, consequence="is not loaded")
    trained_with = str(card.get("versions", {}).get("scikit_learn") or card.get("scikit_learn_version"))
    if trained_with != sklearn.__version__:
        raise IncompatibleModelError(
            f"{model.uri} was trained with scikit-learn {trained_with}, and this environment has "
            f"{sklearn.__version__}; pickled models are not portable across versions: install "
            f"scikit-learn=={trained_with} to load it (or retrain with this version)"
        )
    return pickle.loads(payload), card  # checked against the card's sha256 above


def load_champion(publish_uri: str, *, store: Store | None = None) -> tuple[Any, dict[str, Any]]:
    """``(model, card)`` of the current champion, checked like ``load_model`` and against the manifest's sha256."""
    store = store or Store.on_this_machine()
    manifest = read_champion(publish_uri, store=store)
    if manifest is None:
        raise IntegrityError(f"there is no champion at {champion_uri(publish_uri)}; publish a model first")
    try:
        model, card = load_model(str(manifest["model_uri"]), store=store)
    except IntegrityError as exc:
        raise IntegrityError(f"the champion {manifest.get('identity')} ({manifest['model_uri']}): {exc}") from exc
    if card["model_sha256"] != manifest.get("sha256"):
        raise IntegrityError(
            f"the champion {manifest.get('identity')} ({manifest['model_uri']}) has sha256 {card['model_sha256']}, "
            f"but champion.json records {manifest.get('sha256')}; it was replaced after promotion"
        )
    return model, card
