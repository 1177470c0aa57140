"""Train the SVM: the only module that imports pandas and scikit-learn (import it lazily elsewhere).

Outputs, beside each other: ``model.pkl`` (the pickled ``sklearn.svm.SVC``) and ``metrics.json``
(rows, classes, accuracies, scikit-learn version and the model's sha256, which ``publish``
checks). Both are deterministic for the same data, parameters and library versions, which is what
lets two concurrent executions agree on one model without overwriting each other (see
``write_model``).
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from mlpipe.artifacts import write_model
from mlpipe.dataset import IRIS_LABELS, N_FEATURES, validate_dataset
from mlpipe.exceptions import InvalidDatasetError, InvalidHyperparametersError, TrainingError
from mlpipe.targets import CHUNK_SIZE, Target

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What a training produced: whether this call wrote the model, its metrics and how long fitting took."""

    wrote: bool
    metrics: dict[str, Any]
    seconds: float


def read_dataset(handle: IO[bytes], uri: str, labels: Sequence[str] = IRIS_LABELS) -> tuple[Any, Any]:
    """Features (float64, n x 4) and class ids (int64) of a validated dataset, read with pandas."""
    import numpy as np
    import pandas as pd

    columns = [f"x{i}" for i in range(N_FEATURES)]
    try:
        frame = pd.read_csv(
            handle,
            header=None,
            encoding="utf-8-sig",
            skip_blank_lines=True,
            skipinitialspace=True,
            names=[*columns, "label"],
            dtype={**dict.fromkeys(columns, "float64"), "label": "str"},
        )
    except (ValueError, pd.errors.ParserError) as exc:  # the validator and pandas disagree: still the data's fault
        raise InvalidDatasetError(f"invalid dataset at {uri}: pandas cannot read it: {exc}") from exc
    # Explicit label -> class id mapping, in the configured label order (pandas 3's replace() no
    # longer casts strings to integers, and an implicit mapping would depend on row order).
    class_ids = {label: index for index, label in enumerate(labels)}
    y = frame["label"].str.strip().map(class_ids)
    if y.isna().any() or frame[columns].isna().to_numpy().any():
        raise InvalidDatasetError(f"invalid dataset at {uri}: pandas read missing values or unknown labels")
    return frame[columns].to_numpy(dtype=np.float64), y.to_numpy(dtype=np.int64)


def train_model(
    dataset: Target,
    model: Target,
    *,
    hyperparameters: dict[str, Any],
    cv_folds: int,
    labels: Sequence[str] = IRIS_LABELS,
    allow_local: bool = True,
) -> TrainResult:
    """Fit an SVC on ``dataset``, write ``model`` and metrics.json beside it; return the metrics.

    Raises InvalidDatasetError (the stored dataset is not valid, or has too few rows per class
    for ``cv_folds``), InvalidHyperparametersError (scikit-learn rejects the parameters) or
    TrainingError; nothing is written in those cases.
    """
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.svm import SVC
    from sklearn.utils._param_validation import InvalidParameterError

    with dataset.open_read() as handle:
        stats = validate_dataset(iter(lambda: handle.read(CHUNK_SIZE), b""), dataset.uri, labels, cv_folds)
        handle.seek(0)
        features, targets = read_dataset(handle, dataset.uri, labels)

    present = {label: count for label, count in stats.class_counts.items() if count}

    if hyperparameters.get("probability") and hyperparameters.get("random_state") is None:
        # Platt scaling draws random folds: a fixed seed keeps training deterministic, which is what
        # lets concurrent executions of one run date agree on the model's bytes (artifacts.write_model).
        hyperparameters = {**hyperparameters, "random_state": 0}
    estimator = SVC(**hyperparameters)
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # reported through max_iter in the metrics instead
            estimator.fit(features, targets)
            folds = StratifiedKFold(n_splits=cv_folds)  # no shuffling: deterministic, see the module docstring
            scores = cross_val_score(SVC(**hyperparameters), features, targets, cv=folds, error_score="raise")
    except InvalidParameterError as exc:
        raise InvalidHyperparametersError(f"scikit-learn rejects the hyperparameters {hyperparameters}: {exc}") from exc
    except ValueError as exc:
        raise InvalidHyperparametersError(
            f"scikit-learn cannot fit SVC({hyperparameters}) on {dataset.uri}: {exc}"
        ) from exc
    except Exception as exc:
        raise TrainingError(f"fitting SVC({hyperparameters}) on {dataset.uri} failed: {exc}") from exc
    seconds = time.perf_counter() - started

    payload = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)

    metrics = {
        "rows": stats.rows,
        "classes": [label for label in labels if present.get(label)],
        "class_counts": present,
        "class_ids": {label: index for index, label in enumerate(labels)},
        "training_accuracy": float(estimator.score(features, targets)),
        "cv_accuracy": {
            "mean": float(scores.mean()),
            "std": float(scores.std()),
            "folds": cv_folds,
            "scores": [float(s) for s in scores],
        },
        "hyperparameters": hyperparameters,
        "scikit_learn_version": sklearn.__version__,
        "dataset_sha256": stats.sha256,
        "model_bytes": len(payload),
        "model_sha256": hashlib.sha256(payload).hexdigest(),
    }
    wrote = write_model(model, payload, metrics, allow_local=allow_local)
    return TrainResult(wrote=wrote, metrics=metrics, seconds=seconds)
