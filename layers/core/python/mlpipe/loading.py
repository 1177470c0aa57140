"""Load a published (or stored) model for a consumer, refusing one that is not what its card says.

A pickle runs code when it is loaded: load only models from your own bucket or directory.
"""

from __future__ import annotations

import pickle
from typing import Any

from mlpipe.artifacts import read_checked
from mlpipe.exceptions import IncompatibleModelError, IntegrityError
from mlpipe.targets import target_for


def load_model(uri: str) -> tuple[Any, dict[str, Any]]:
    """``(model, card)`` for the model.pkl at ``uri`` (``s3://...``, ``file://...`` or a path).

    Raises IntegrityError when the card (metrics.json beside it) is missing or the model's bytes do
    not match the sha256 it records, and IncompatibleModelError when this environment's
    scikit-learn is not the version the model was trained with (pickles are not portable across
    versions). Nothing is unpickled before both checks pass.
    """
    import sklearn

    model = target_for(uri)
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
