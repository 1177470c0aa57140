"""Identities: what a target is made from is part of its name, in the spirit of Luigi's ``task_id``.

Each target's location holds a short, stable identity: its family and the first 12 hex digits of
the sha256 of its significant inputs, as canonical JSON. The plan step computes all three before
anything runs, so the same inputs give the same locations (and Luigi's skip), and changed inputs
give new locations (and a rerun of what they change), while nothing is ever overwritten:

- dataset: the run date, the source as the user named it (``source_id``, default the URL), the
  dataset description, and the source's version where the plan knows one (an S3 object's ETag and
  version id, an HTTP ETag or Last-Modified, a local file's size and mtime: ``mlpipe.sources``) and the
  user did not name the source themselves (``source_id``);
- model: the dataset's identity, the estimator (``auto`` as such: its choice follows from the
  dataset), its effective hyperparameters that change the fit
  (defaults filled in; ``n_jobs``, ``verbose``, ``cache_size`` left out), the CV folds, the
  preprocessing, ``TRAINING_CODE_VERSION`` and scikit-learn's minor version;
- published model: the model's identity.

Settings that do not change an output (timeouts, retries, log levels, the size limit) are not part
of any identity. A forced task (``force``) adds the execution's id to its own identity, so it and
every task after it write new targets beside the old ones.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from mlpipe.estimators import (
    ESTIMATORS,
    effective_hyperparameters,
    scikit_learn_minor,
    significant_hyperparameters,
    spec_of,
)
from mlpipe.exceptions import InvalidHyperparametersError
from mlpipe.problem import AUTO as AUTO_TASK
from mlpipe.problem import DEFAULT_TARGET_TRANSFORM
from mlpipe.scaling import AUTO
from mlpipe.steps import FAMILIES, TASKS

# Bump on purpose when training's semantics change (what is fitted, how it is cross-validated):
# every model identity changes with it, so the next run of each date retrains.
# 3: a stratified holdout from mlpipe.scaling.HOLDOUT_MIN_ROWS rows, estimator auto, the fit-time guard.
# 4: the training accuracy on a seeded sample of at most 10,000 rows (training.training_sample).
TRAINING_CODE_VERSION = 4
DIGITS = 12


@dataclass(frozen=True)
class Identity:
    """A target's identity (``family-0123456789ab``) and the inputs it is the hash of."""

    family: str
    digest: str
    inputs: dict[str, Any]

    @property
    def id(self) -> str:
        """``<family>-<12 hex digits>``: the folder the target lives in."""
        return f"{self.family}-{self.digest}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as the run and the lineage record carry it."""
        return {"identity": self.id, "inputs": self.inputs}


def identity(family: str, inputs: dict[str, Any]) -> Identity:
    """The identity of a ``family`` target made from ``inputs`` (any JSON-able mapping)."""
    canonical = json.dumps(
        inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str, allow_nan=False
    )
    return Identity(family, hashlib.sha256(f"{family}\n{canonical}".encode()).hexdigest()[:DIGITS], inputs)


def _lookup_task(estimator: str, params: dict[str, Any], task: str) -> str:
    """The task whose estimator the hyperparameters are read for: ``task``, or under ``auto`` the one they fit."""
    if task != AUTO_TASK:
        return task
    if estimator not in ESTIMATORS:
        return "regression"
    try:
        effective_hyperparameters(estimator, params, "classification")
    except InvalidHyperparametersError:
        return "regression"
    return "classification"


def _same_numbers(estimator: str, params: dict[str, Any], task: str = "classification") -> dict[str, Any]:
    """An integer given for a parameter whose default is a float is that float: ``{"C": 1}`` is ``{"C": 1.0}``."""
    if not params or estimator == AUTO:  # auto takes no hyperparameters
        return params
    defaults = effective_hyperparameters(estimator, {}, task)
    return {
        name: float(value)
        if isinstance(value, int) and not isinstance(value, bool) and isinstance(defaults.get(name), float)
        else value
        for name, value in params.items()
    }


def preprocessing(estimator: str, description: dict[str, Any], task: str = "classification") -> dict[str, Any]:
    """What the model's preprocessing is made of, as far as the inputs decide it (``auto``: as its choice needs)."""
    if estimator == AUTO:
        return {"scale_numeric": AUTO, "impute": description.get("missing") == "impute", "one_hot": True}
    spec = spec_of(estimator, task)
    return {"scale_numeric": spec.scale, "impute": description.get("missing") == "impute", "one_hot": True}


def problem_inputs(task: str, target_transform: str) -> dict[str, Any]:
    """The model identity's task and target transform, when not the defaults (whose models keep their identity)."""
    inputs: dict[str, Any] = {}
    if task != AUTO_TASK:
        inputs["task"] = task
    if target_transform != DEFAULT_TARGET_TRANSFORM:
        inputs["target_transform"] = target_transform
    return inputs


def run_identities(
    *,
    run_date: str,
    source_id: str,
    description: dict[str, Any],
    estimator: str,
    hyperparameters: dict[str, Any],
    cv_folds: int,
    force: str | None = None,
    nonce: str | None = None,
    source_version: dict[str, Any] | None = None,
    task: str = AUTO_TASK,
    target_transform: str = DEFAULT_TARGET_TRANSFORM,
) -> dict[str, Identity]:
    """The identities of the run's three targets, keyed by task (download, train, upload).

    ``force`` names the first task to redo whatever exists; ``nonce`` (the execution's id) then
    enters that task's identity, and through it every later one's. The model's ``task`` and
    ``target_transform`` enter only when not the defaults (``auto``, ``none``): a default run keeps its identity.
    """
    forced = TASKS.index(force) if force else len(TASKS)
    lookup = _lookup_task(estimator, hyperparameters, task)

    def salt(task: str) -> dict[str, Any]:
        return {"force": nonce} if TASKS.index(task) == forced else {}

    versioned = {"source_version": source_version} if source_version else {}  # none known: the name alone, as before
    dataset = identity(
        FAMILIES["download"],
        {"run_date": run_date, "source": source_id, "description": description} | versioned | salt("download"),
    )
    model = identity(
        FAMILIES["train"],
        {
            "dataset": dataset.id,
            "estimator": estimator,
            "hyperparameters": _same_numbers(
                estimator, significant_hyperparameters(estimator, hyperparameters, lookup), lookup
            ),
            "cv_folds": cv_folds,
            "preprocessing": preprocessing(estimator, description, lookup),
            "training_code_version": TRAINING_CODE_VERSION,
            "scikit_learn": scikit_learn_minor(),
        }
        | problem_inputs(task, target_transform)
        | salt("train"),
    )
    published = identity(FAMILIES["upload"], {"model": model.id} | salt("upload"))
    return {"download": dataset, "train": model, "upload": published}
