"""Load a published (or stored) model for a consumer, refusing one that is not what its records say.

A pickle runs code when it is loaded, so nothing is unpickled before its bytes are checked: the
model is read once, its sha256 compared with the strongest record there is (the champion manifest,
``champion.json``, for the champion; its card, ``metrics.json``, always), and only those bytes are
unpickled. Load models only from your own bucket or directory all the same: a card is written
beside its model, by whoever could write the model. ``load_model`` and ``load_champion`` are the
consumer's API: called on a person's machine or in their service, they read through
``Store.on_this_machine()`` unless given a store.
"""

from __future__ import annotations

import pickle
from typing import Any

from mlpipe.artifacts import Record, read_checked
from mlpipe.champion import champion_uri, read_champion
from mlpipe.exceptions import IncompatibleModelError, IntegrityError, NoChampionError
from mlpipe.naming import choose_model, model_location
from mlpipe.storage import Store, Target


def load_model(uri: str, *, store: Store | None = None) -> tuple[Any, dict[str, Any]]:
    """``(model, card)`` for the model.pkl at ``uri`` (``s3://...``, ``file://...`` or a path).

    Raises IntegrityError when the card (metrics.json beside it) is missing or the model's bytes do
    not match the sha256 it records, and IncompatibleModelError when this environment's
    scikit-learn is not the version the model was trained with (pickles are not portable across
    versions). Nothing is unpickled before both checks pass.
    """
    return _load((store or Store.on_this_machine()).target(uri), None)


def load_champion(
    publish_uri: str, *, model: str | None = None, store: Store | None = None
) -> tuple[Any, dict[str, Any]]:
    """``(model, card)`` of the current champion of ``model`` under the publish root ``publish_uri`` (its
    champion.json is at ``<publish_uri>/<model>/``): its bytes checked against champion.json's sha256, then its card's.

    Without ``model``: the only model under the root (``iris`` when there is none yet); UnknownModelError naming
    them when there are several, or when ``model`` published nothing there.

    Raises NoChampionError when there is no champion yet, IntegrityError (naming the champion) when
    its model is missing, or its bytes or its card are not the ones champion.json records, and
    IncompatibleModelError as ``load_model`` does. Nothing is unpickled before every check passes.
    """
    store = store or Store.on_this_machine()
    location = model_location(publish_uri, choose_model(publish_uri, model, store=store))
    loaded, card, _ = load_champion_checked(location, store=store)
    return loaded, card


def load_champion_checked(publish_uri: str, *, store: Store) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """``(model, card, manifest)``: the champion as ``load_champion`` loads it, and the manifest it was checked against.

    The manifest is read once, and the model's bytes once: what is returned is what was checked.
    """
    manifest = read_champion(publish_uri, store=store)
    where = champion_uri(publish_uri)
    if manifest is None:
        raise no_champion(publish_uri)
    record = Record(manifest.get("sha256"), f"champion.json at {store.target(where).uri}")
    try:
        model, card = _load(store.target(str(manifest["model_uri"])), record)
    except IntegrityError as exc:
        raise IntegrityError(f"the champion {manifest.get('identity')} ({manifest['model_uri']}): {exc}") from exc
    return model, card, manifest


def no_champion(publish_uri: str) -> NoChampionError:
    """The error for a publish location without a champion.json, saying how to get one."""
    return NoChampionError(
        f"there is no champion at {champion_uri(publish_uri)} yet: run the pipeline until a model passes the gate "
        "and is promoted, or make a published model the champion with `pipeline promote --run-date YYYY-MM-DD`; "
        "or give a model by its URI (`pipeline predict --model-uri`, `mlpipe.load_model`)"
    )


def _load(model: Target, record: Record | None) -> tuple[Any, dict[str, Any]]:
    """Read ``model`` once, check its bytes (``record`` first, then the card) and its scikit-learn version, unpickle."""
    import sklearn

    if not model.exists():
        raise IntegrityError(f"there is no model at {model.uri}")
    checked = read_checked(model, consequence="is not loaded", record=record)
    card = checked.card
    versions = card.get("versions")
    versions = versions if isinstance(versions, dict) else {}
    trained_with = str(versions.get("scikit_learn") or card.get("scikit_learn_version"))
    if trained_with != sklearn.__version__:
        raise IncompatibleModelError(
            f"{model.uri} was trained with scikit-learn {trained_with}, and this environment has "
            f"{sklearn.__version__}; pickled models are not portable across versions: install "
            f"scikit-learn=={trained_with} to load it (or retrain with this version)"
        )
    return pickle.loads(checked.payload), card  # exactly the bytes checked above, never read again
