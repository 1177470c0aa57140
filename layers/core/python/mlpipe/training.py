"""Train a scikit-learn classifier or regressor: the only module that imports pandas and scikit-learn (import it lazily
elsewhere).

What is fitted is one ``sklearn.pipeline.Pipeline``: a ``ColumnTransformer`` with the
preprocessing the estimator needs (imputation with ``missing: impute``; standard scaling of the
numeric columns for SVC, linear SVC and logistic regression; one-hot encoding of categorical
columns, unknown categories ignored at prediction time), then the estimator, fitted on the label
values themselves so that ``predict`` returns them. It takes a DataFrame with the training
columns (or, for all-numeric data, a 2-D array in their order); id-like and constant columns are
accepted as input and not used.

Outputs, beside each other: ``model.pkl`` (the pickled pipeline) and ``metrics.json``, the model
card (the dataset as read, the estimator and its parameters, cross-validated metrics, versions,
and the model's sha256, which ``publish`` and ``load_model`` check). The model's bytes are
deterministic for the same data, parameters and library versions, which is what lets two
concurrent executions agree on one model without overwriting each other (``write_model``).

Under task regression (decided by ``mlpipe.problem.decide_task``) the estimator is the regressor of
the name (``mlpipe.estimators.REGRESSORS``), the folds are shuffled, seeded K-fold (no strata), the
metrics are R², RMSE, MAE and the median absolute error of the cross-validated predictions against
the mean predictor's (``measure_regression``), and ``target_transform: log`` wraps the regressor in
``TransformedTargetRegressor(log1p, expm1)``. Both tasks' cards carry ``task`` and ``score``
(``{"name", "value", "std", "baseline"}``: CV accuracy against the majority class, or CV R²
against the mean predictor, under the same splits).

``train_model`` runs its steps one after the other, each a function with its own result:
``read_training_data`` (``TrainingData``), ``choose_model`` (``ModelChoice``), ``estimate_fit``
(``FitEstimate``), ``fit_model`` (``Fitted``), ``measure`` (``Measures``) and ``write_card``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import logging
import pickle
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from mlpipe import scaling
from mlpipe.artifacts import write_model
from mlpipe.dataset import RULES, DatasetStats, check_class_rows, validate_dataset
from mlpipe.description import DatasetDescription
from mlpipe.estimators import (
    effective_hyperparameters,
    has_predict_proba,
    non_default_hyperparameters,
    resolve_name,
    spec_of,
)
from mlpipe.exceptions import InvalidDatasetError, InvalidHyperparametersError, PipelineError, TrainingError
from mlpipe.problem import (
    AUTO as AUTO_TASK,
)
from mlpipe.problem import (
    CLASSIFICATION,
    DEFAULT_TARGET_TRANSFORM,
    REGRESSION,
    TaskDecision,
    check_regression_label,
    decide_task,
    regression_hint,
)
from mlpipe.scaling import (
    HOLDOUT_FRACTION,
    check_fits,
    choose_estimator,
    cores,
    estimate_seconds,
    uses_holdout,
)
from mlpipe.storage import CHUNK_SIZE, Target, sha256_of

LOG = logging.getLogger(__name__)
CARD_VERSION = 3  # 3: task, task_decision and score (both tasks); the regression sections
CV_PREDICTIONS_SHOWN = 300  # cross-validated (actual, predicted) pairs a regression card keeps for the report
CLASSIFICATION_REQUESTED = TaskDecision(CLASSIFICATION, CLASSIFICATION, "task classification was requested")
CV_SEED = 0  # the folds are shuffled with a fixed seed: an honest estimate for sorted files, and deterministic
PROGRESS_SECONDS = 5.0  # the least time between two progress lines about folds


class _Progress:
    """Progress lines at INFO: each phase as it starts, fold completions at most every PROGRESS_SECONDS.

    Each record's ``progress`` field holds the phase's name and the seconds since
    training started: a JSON log line in AWS, a console line under ``pipeline run``
    (``observability.PROGRESS_LOGGERS``).
    """

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._last = -PROGRESS_SECONDS

    def phase(self, name: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        progress = {"phase": name, "seconds": round(now - self._started, 1)}
        LOG.info(message, *args, extra={"progress": progress})
        self._last = now

    def step(self, name: str, message: str, *args: Any, last: bool = False) -> None:
        if last or time.monotonic() - self._last >= PROGRESS_SECONDS:
            self.phase(name, message, *args)


@dataclass(frozen=True)
class TrainResult:
    """What a training produced: whether this call wrote the model, its card and how long fitting took."""

    wrote: bool
    metrics: dict[str, Any]
    seconds: float


def checked_stats(
    handle: IO[bytes],
    uri: str,
    known: DatasetStats | None,
    description: DatasetDescription,
    cv_folds: int,
    task: str = AUTO_TASK,
    target_transform: str = DEFAULT_TARGET_TRANSFORM,
) -> DatasetStats:
    """The dataset's stats: ``known`` when the file's bytes are the ones it describes, else a new validation.

    The download validated these bytes while they streamed; a sha256 over the stored file (a
    second per 1.5 GB) proves they are still those bytes, where validating again costs 8 s per
    million rows. A check made by older rules (``dataset.RULES``) is not reused. The class counts
    are checked against this run's ``cv_folds`` either way, and the label against this run's task
    (a check made for the other task is not reused).
    """
    if known is not None and known.rules != RULES:
        LOG.info("the download checked %s by older rules (%d, now %d): validating it", uri, known.rules, RULES)
        known = None
    if known is not None and (known.label is None or decide_task(task, known.label).task != known.task):
        LOG.info("the download checked %s as %s; this run's task is %s: validating it", uri, known.task, task)
        known = None
    if known is not None and known.label is not None:
        digest = sha256_of(handle)
        if digest == known.sha256 and handle.tell() == known.bytes:
            decision = decide_task(task, known.label)
            if decision.task == REGRESSION:
                check_regression_label(uri, known.label, known.rows, cv_folds, target_transform)
            else:
                check_class_rows(uri, known.class_counts, cv_folds, regression_hint(decision, known.label))
            LOG.info(
                "the download's check of these %d rows holds (the same sha256): not validated again",
                known.rows,
                extra={"progress": {"phase": "reading", "reused_check": True}},
            )
            return known
        LOG.warning("%s is not what its download checked (sha256 %s, not %s): validating it", uri, digest, known.sha256)
        handle.seek(0)
    return validate_dataset(
        iter(lambda: handle.read(CHUNK_SIZE), b""),
        uri,
        description,
        cv_folds,
        task=task,
        target_transform=target_transform,
    )


def check_memory_before_reading(
    stats: DatasetStats, requested: str, hyperparameters: dict[str, Any], cv_folds: int, parallel: bool
) -> None:
    """TrainingTooLargeError when the training's estimated peak memory is more than the function has."""
    chosen = choose_estimator(requested, stats.rows).name
    name = spec_of(chosen, stats.task).kind  # a regressor costs as its family's classifier
    jobs = scaling.fit_jobs(name, stats.rows, cv_folds, parallel=parallel)
    cache = hyperparameters.get("cache_size") if requested == chosen else None
    columns = len(stats.layout.features) + 1
    estimate = scaling.estimate_memory_mb(
        name, stats.rows, columns, jobs, cache if isinstance(cache, int | float) else None
    )
    scaling.check_memory(estimate, scaling.memory_limit_mb(), estimator=name, rows=stats.rows, columns=columns)


def read_dataset(handle: IO[bytes], uri: str, stats: DatasetStats, description: DatasetDescription) -> tuple[Any, Any]:
    """The feature columns as a DataFrame (numeric ones float64, the others text) and the labels, with pandas.

    Integer labels become int64, any other labels stay strings (stripped of surrounding spaces); a
    regression target (``stats.task``) is float64.
    """
    import numpy as np
    import pandas as pd

    layout = stats.layout
    label = layout.label_name
    features = layout.feature_names
    dtypes: dict[str, Any] = {name: "float64" if stats.kinds[name] == "numeric" else "str" for name in features}
    dtypes[label] = "str"
    options: dict[str, Any] = {
        "sep": description.delimiter,
        "header": 0 if layout.header.present else None,
        "names": list(layout.names),
        "usecols": [label, *features],
        "na_values": list(description.na_values),
        "keep_default_na": False,
        "skipinitialspace": True,
        "skip_blank_lines": True,
        "quotechar": '"',
        "encoding": "utf-8-sig",
    }
    start = handle.tell()
    try:
        frame = pd.read_csv(handle, dtype=dtypes, **options)
    except ValueError:
        # The fast path parses numbers in C; a cell it cannot take that the validator accepted (an NA
        # token with trailing spaces, say) sends the numeric columns through text, stripped, instead.
        handle.seek(start)
        try:
            frame = pd.read_csv(handle, dtype=dict.fromkeys([label, *features], "str"), **options)
            na = set(description.na_values)
            for name in features:
                if stats.kinds[name] == "numeric":
                    stripped = frame[name].str.strip()
                    frame[name] = pd.to_numeric(stripped.where(~stripped.isin(na)), errors="raise")
        except (ValueError, pd.errors.ParserError) as exc:  # the validator and pandas disagree: the data's fault
            raise InvalidDatasetError(f"invalid dataset at {uri}: pandas cannot read it: {exc}") from exc
    except pd.errors.ParserError as exc:
        raise InvalidDatasetError(f"invalid dataset at {uri}: pandas cannot read it: {exc}") from exc
    if len(frame) != stats.rows:
        raise InvalidDatasetError(f"invalid dataset at {uri}: pandas read {len(frame)} rows, the check {stats.rows}")
    for name in features:
        if stats.kinds[name] == "categorical":
            frame[name] = frame[name].str.strip().astype(object).where(frame[name].notna(), np.nan)
    y = frame[label].str.strip()
    if y.isna().any():
        raise InvalidDatasetError(f"invalid dataset at {uri}: pandas read a missing label")
    if stats.task == REGRESSION:
        return frame[features], y.astype("float64").to_numpy()
    labels = y.astype("int64").to_numpy() if stats.label_kind == "integer" else y.to_numpy(dtype=object)
    return frame[features], labels


def plan_columns(frame: Any, stats: DatasetStats) -> tuple[list[int], list[int], list[dict[str, str]]]:
    """Positions of the numeric and categorical columns to use, and the columns left out with the reason."""
    numeric, categorical, dropped = [], [], []
    for position, name in enumerate(frame.columns):
        column = frame[name]
        present = column.dropna()
        distinct = present.nunique()
        if distinct <= 1:
            dropped.append({"column": name, "reason": "constant: one value in every row" if distinct else "empty"})
        elif stats.kinds[name] == "categorical" and distinct == len(present) and len(present) == len(column):
            reason = "an id: every row has a different text value"
            if present.astype(str).str.fullmatch(r"[+-]?\d+,\d+").all():
                reason += " (they look like numbers with a decimal comma: this pipeline reads '.' as the decimal mark)"
            dropped.append({"column": name, "reason": reason})
        elif stats.kinds[name] == "numeric":
            numeric.append(position)
        else:
            categorical.append(position)
    return numeric, categorical, dropped


def build_pipeline(
    estimator: str,
    params: dict[str, Any],
    numeric: list[int],
    categorical: list[int],
    impute: bool,
    task: str = CLASSIFICATION,
    target_transform: str = DEFAULT_TARGET_TRANSFORM,
) -> Any:
    """The unfitted ``Pipeline``: the preprocessing ``estimator`` needs, then the estimator with ``params``.

    The last step is ``classifier`` or ``regressor``; with ``target_transform`` log the regressor is a
    ``TransformedTargetRegressor`` fitting ``log1p`` of the target and predicting ``expm1`` of its output.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    spec = spec_of(estimator, task)
    module, _, name = spec.class_path.rpartition(".")
    classifier = getattr(importlib.import_module(module), name)(**params)
    if task == REGRESSION:
        classifier = _target_transformed(classifier, target_transform, scale=spec.scale_target)
    transformers: list[tuple[str, Any, list[int]]] = []
    if numeric:
        steps: list[tuple[str, Any]] = []
        if impute:
            steps.append(("impute", SimpleImputer(strategy="median")))
        if spec.scale:
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps) if steps else "passthrough", numeric))
    if categorical:
        steps = [("impute", SimpleImputer(strategy="most_frequent"))] if impute else []
        steps.append(("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=not spec.dense)))
        transformers.append(("categorical", Pipeline(steps), categorical))
    preprocess = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0 if spec.dense else 0.3)
    return Pipeline([("preprocess", preprocess), ("regressor" if task == REGRESSION else "classifier", classifier)])


def _target_transformed(regressor: Any, target_transform: str, *, scale: bool) -> Any:
    """``regressor`` fitted to the transformed target (``log1p`` and/or standardised), predicting in its units.

    SVR's and LinearSVR's ``epsilon`` (0.1) and ``C`` are in the target's units: on a target in the hundreds their
    defaults barely fit, so their target is standardised (and their predictions scaled back), as their features are.
    """
    import numpy as np
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    steps: list[tuple[str, Any]] = []
    if target_transform == "log":
        steps.append(("log1p", FunctionTransformer(np.log1p, inverse_func=np.expm1, check_inverse=False)))
    if scale:
        steps.append(("scale", StandardScaler()))
    if not steps:
        return regressor
    transformer = steps[0][1] if len(steps) == 1 else Pipeline(steps)
    return TransformedTargetRegressor(regressor=regressor, transformer=transformer, check_inverse=False)


def preprocessing_summary(
    estimator: str,
    impute: bool,
    numeric: list[str],
    categorical: list[str],
    task: str = CLASSIFICATION,
    target_transform: str = DEFAULT_TARGET_TRANSFORM,
) -> dict[str, Any]:
    """What the pipeline does to each kind of column, for the model card (and the model's identity)."""
    spec = spec_of(estimator, task)
    numeric_steps = (["impute: median"] if impute else []) + (["standard scaling"] if spec.scale else [])
    categorical_steps = (["impute: most frequent"] if impute else []) + ["one-hot (unknown categories ignored)"]
    summary: dict[str, Any] = {
        "numeric": {"columns": numeric, "steps": numeric_steps or ["none"]},
        "categorical": {"columns": categorical, "steps": categorical_steps if categorical else []},
    }
    if task == REGRESSION:
        summary["target"] = {
            "steps": (["log1p"] if target_transform == "log" else [])
            + (["standard scaling (predictions scaled back)"] if spec.scale_target else [])
            or ["none"]
        }
    return summary


@dataclass(frozen=True)
class TrainingData:
    """What the read step gives: the dataset's checked stats, the feature columns (a DataFrame) and the labels."""

    stats: DatasetStats
    features: Any
    labels: Any
    decision: TaskDecision = CLASSIFICATION_REQUESTED

    @property
    def task(self) -> str:
        """``classification`` or ``regression``, as decided."""
        return self.decision.task


@dataclass(frozen=True)
class ModelChoice:
    """What the choose step gives: the columns used, the estimator and its parameters, the unfitted pipeline."""

    requested: str
    estimator: str
    reason: str
    params: dict[str, Any]
    impute: bool
    numeric: list[int]
    categorical: list[int]
    dropped: list[dict[str, str]]
    pipeline: Any
    shown: str  # the estimator as error messages name it: its class and non-default parameters
    task: str = CLASSIFICATION
    target_transform: str = DEFAULT_TARGET_TRANSFORM

    @property
    def kind(self) -> str:
        """The name mlpipe.scaling costs the estimator by (a regressor: its family's classifier)."""
        return spec_of(self.estimator, self.task).kind


@dataclass(frozen=True)
class FitEstimate:
    """What the estimate step gives: the features after one-hot encoding and the estimated seconds."""

    width: int
    seconds: float


@dataclass(frozen=True)
class Fitted:
    """What the fit step gives: the final model, the splits and each held-out row's prediction, the scores.

    ``codes`` and ``predicted`` are class positions in ``classes``; ``predicted`` is -1 for rows no split held out.
    For regression ``classes`` is empty, ``codes`` the target, ``predicted`` NaN for rows no split held out,
    ``scores`` the R² of each split and ``training_accuracy`` the training R². ``baseline`` holds the trivial
    predictor's score per split (the training rows' majority class, or their mean).
    """

    model: Any
    classes: list[Any]
    codes: Any
    splits: list[tuple[Any, Any]]
    method: str
    jobs: int
    sample: Any
    predicted: Any
    scores: list[Any]
    training_accuracy: float
    warnings: list[str]
    seconds: float
    baseline: list[float] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class Measures:
    """What the measure step gives: the card's ``cv_accuracy`` (regression: ``cv_r2``), ``cv_metrics`` and ``score``
    sections, and for regression ``cv_predictions`` (a sample of held-out rows' actual and predicted values)."""

    cv_accuracy: dict[str, Any]
    cv_metrics: dict[str, Any]
    score: dict[str, Any] = dataclasses.field(default_factory=dict)
    cv_predictions: dict[str, Any] | None = None


def train_model(
    dataset: Target,
    model: Target,
    *,
    estimator: str,
    hyperparameters: dict[str, Any],
    cv_folds: int,
    description: DatasetDescription | None = None,
    lineage: dict[str, Any] | None = None,
    time_left: Callable[[], float] | None = None,
    parallel: bool = True,
    known: DatasetStats | None = None,
    task: str = AUTO_TASK,
    target_transform: str = DEFAULT_TARGET_TRANSFORM,
    sections: dict[str, Any] | None = None,
) -> TrainResult:
    """Fit ``estimator`` (for ``auto``: the one mlpipe.scaling chooses) on ``dataset``; write ``model`` and its card.

    ``lineage`` (a lineage record) becomes the card's ``lineage`` section, with the dataset's URI
    and sha256 as its input. ``time_left`` gives the seconds the function has left (Lambda's
    ``get_remaining_time_in_millis`` / 1000): before fitting, the estimated fit time is checked
    against it. ``parallel`` False fits the folds one after the other (the same model and scores).
    ``known`` is the download's check of this dataset (``tasks.known_stats``): when the stored
    file's sha256 is the one it checked, the file is not validated a second time. ``task`` (``auto``:
    decided from the label, ``mlpipe.problem``) and ``target_transform`` say what is fitted. ``sections`` are added to
    the card as they are (the data's profile, drift and schema change: ``mlpipe.contract.card_sections``).

    Raises InvalidDatasetError (the stored dataset does not match its description, has too few
    rows per class for ``cv_folds``, or scikit-learn's input checks refuse it),
    InvalidHyperparametersError (scikit-learn's parameter validation rejects the parameters, or
    they fail on any data), TrainingTooLargeError (the time estimate does not fit in ``time_left``,
    or the memory estimate in the function's memory) or TrainingError; nothing is written in those cases.
    """
    description = description or DatasetDescription()
    check_planned_scikit_learn(lineage)
    progress = _Progress()
    data = read_training_data(
        dataset,
        description,
        known,
        estimator,
        hyperparameters,
        cv_folds=cv_folds,
        parallel=parallel,
        progress=progress,
        task=task,
        target_transform=target_transform,
    )
    choice = choose_model(data, estimator, hyperparameters, description, dataset.uri, target_transform)
    estimate = estimate_fit(data, choice, cv_folds, time_left, progress)
    fitted = fit_model(data, choice, cv_folds=cv_folds, parallel=parallel, uri=dataset.uri, progress=progress)
    progress.phase(
        "writing", "fitted in %.1f s (estimated %.1f s); writing %s", fitted.seconds, estimate.seconds, model.uri
    )
    measures = measure(fitted, data.task)
    return write_card(
        model,
        dataset.uri,
        data,
        choice,
        estimate,
        fitted,
        measures,
        description=description,
        hyperparameters=hyperparameters,
        lineage=lineage,
        sections=sections,
    )


def check_planned_scikit_learn(lineage: dict[str, Any] | None) -> None:
    """TrainingError when the lineage's plan named another scikit-learn minor version than the one installed."""
    import sklearn

    planned = ((lineage or {}).get("inputs") or {}).get("scikit_learn")
    if planned and ".".join(sklearn.__version__.split(".")[:2]) != planned:
        raise TrainingError(
            f"the plan named scikit-learn {planned} in the model's identity, but training has {sklearn.__version__}: "
            "the core layer's estimator_constraints.json and the ML layer disagree; rebuild both from this repository"
        )


def read_training_data(
    dataset: Target,
    description: DatasetDescription,
    known: DatasetStats | None,
    estimator: str,
    hyperparameters: dict[str, Any],
    *,
    cv_folds: int,
    parallel: bool,
    progress: _Progress,
    task: str = AUTO_TASK,
    target_transform: str = DEFAULT_TARGET_TRANSFORM,
) -> TrainingData:
    """The read step: the dataset's stats (``checked_stats``), the task, the memory check, then its columns and labels.

    ``estimator`` is the requested one (``auto`` included): the memory check chooses as training will.
    """
    progress.phase("reading", "reading %s", dataset.uri)
    with dataset.open_read() as handle:
        stats = checked_stats(handle, dataset.uri, known, description, cv_folds, task, target_transform)
        assert stats.label is not None  # made by the current rules
        decision = decide_task(task, stats.label)
        resolve_name(estimator, decision.task)  # a regressor's name for a label decided to be classes: say so now
        check_memory_before_reading(stats, estimator, hyperparameters, cv_folds, parallel)
        handle.seek(0)
        features, labels = read_dataset(handle, dataset.uri, stats, description)
    LOG.info("task %s: %s", decision.task, decision.reason)
    return TrainingData(stats, features, labels, decision)


def choose_model(
    data: TrainingData,
    requested: str,
    hyperparameters: dict[str, Any],
    description: DatasetDescription,
    uri: str,
    target_transform: str = DEFAULT_TARGET_TRANSFORM,
) -> ModelChoice:
    """The choose step: the columns to use, the estimator (``auto`` resolved), its parameters and the pipeline.

    Raises InvalidDatasetError when no feature column is usable, InvalidHyperparametersError (or
    InvalidRequestError) for parameters that cannot be; for ``auto``, ``hyperparameters`` are not used.
    """
    numeric, categorical, dropped = plan_columns(data.features, data.stats)
    if not numeric and not categorical:
        raise InvalidDatasetError(
            f"invalid dataset at {uri}: no usable feature column: "
            + "; ".join(f"{d['column']} is {d['reason']}" for d in dropped)
        )
    task = data.task
    choice = choose_estimator(requested, data.stats.rows)
    estimator = resolve_name(choice.name, task)
    try:
        params = effective_hyperparameters(estimator, hyperparameters if requested != "auto" else {}, task)
    except InvalidHyperparametersError as exc:
        raise InvalidHyperparametersError(f"{exc} (the task is {task}: {data.decision.reason})") from exc
    if task == CLASSIFICATION:
        params = _typed_class_weight(params, data.stats.label_kind)
    impute = description.missing == "impute"
    if task != REGRESSION and target_transform != DEFAULT_TARGET_TRANSFORM:
        raise InvalidDatasetError(
            f"invalid dataset at {uri}: target_transform {target_transform} applies to a regression target, but the "
            f"label is taken as classes ({data.decision.reason}); set task regression (--task regression) if it is a "
            "quantity, or leave target_transform out"
        )
    transform = target_transform
    pipeline = build_pipeline(estimator, params, numeric, categorical, impute, task, transform)
    spec = spec_of(estimator, task)
    shown = f"{spec.class_path.rpartition('.')[2]}({non_default_hyperparameters(estimator, params, task)})"
    return ModelChoice(
        requested,
        estimator,
        choice.reason,
        params,
        impute,
        numeric,
        categorical,
        dropped,
        pipeline,
        shown,
        task,
        transform,
    )


def estimate_fit(
    data: TrainingData,
    choice: ModelChoice,
    cv_folds: int,
    time_left: Callable[[], float] | None,
    progress: _Progress,
) -> FitEstimate:
    """The estimate step: the width after one-hot encoding and the estimated seconds, checked against ``time_left``.

    Raises TrainingTooLargeError (``check_fits``) when the estimate does not fit in the time left.
    """
    rows = data.stats.rows
    width = len(choice.numeric) + sum(int(data.features.iloc[:, i].nunique()) for i in choice.categorical)
    seconds = estimate_seconds(choice.kind, rows, width, cv_folds)
    left = time_left() if time_left is not None else None
    progress.phase(
        "estimating",
        "%s: %s on %d rows, %d features: estimated %.1f s, %s s left",
        choice.reason,
        choice.estimator,
        rows,
        width,
        seconds,
        "unknown" if left is None else f"{left:.0f}",
    )
    check_fits(seconds, left, estimator=choice.kind, rows=rows, features=width)
    return FitEstimate(width, seconds)


def cv_splits(
    codes: Any, features: Any, cv_folds: int, task: str = CLASSIFICATION
) -> tuple[list[tuple[Any, Any]], str]:
    """The (training rows, held-out rows) pairs and how they were drawn: a holdout of ``HOLDOUT_FRACTION`` from
    ``HOLDOUT_MIN_ROWS`` rows on (``uses_holdout``), else shuffled ``cv_folds``-fold; stratified by class for
    classification, plain (seeded) for regression."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    stratified = task != REGRESSION
    named = "stratified " if stratified else ""
    if uses_holdout(len(codes)):
        train_rows, test_rows = train_test_split(
            np.arange(len(codes)),
            test_size=HOLDOUT_FRACTION,
            stratify=codes if stratified else None,
            random_state=CV_SEED,
            shuffle=True,
        )
        return [(np.sort(train_rows), np.sort(test_rows))], f"{named}{HOLDOUT_FRACTION:.0%} holdout (seed {CV_SEED})"
    folds = (StratifiedKFold if stratified else KFold)(n_splits=cv_folds, shuffle=True, random_state=CV_SEED)
    splits = list(folds.split(features, codes if stratified else None))
    return splits, f"{named}{cv_folds}-fold, shuffled (seed {CV_SEED})"


def fit_model(
    data: TrainingData, choice: ModelChoice, *, cv_folds: int, parallel: bool, uri: str, progress: _Progress
) -> Fitted:
    """The fit step: the splits, their fits and the final one side by side (``_run_fits``), the scores.

    A failed fit is named by whose fault it is (``_fit_failure``): InvalidHyperparametersError for
    scikit-learn's parameter validation, InvalidDatasetError for its input checks, TrainingError
    for anything else. Scores are accuracy (classification) or R² (regression) per split, beside the
    trivial predictor's (``Fitted.baseline``).
    """
    import numpy as np
    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning

    features, labels = data.features, data.labels
    regression = data.task == REGRESSION
    classes = [] if regression else sorted(set(labels.tolist()))
    # Splits and metrics work on the classes' positions in ``classes``: the same splits and numbers as
    # on the labels themselves (np.unique orders both alike), without scikit-learn sorting a million
    # label strings in each metric (5.6 s of a 1,000,000-row training).
    codes = labels if regression else class_codes(labels, classes)
    splits, method = cv_splits(codes, features, cv_folds, data.task)
    # HistGradientBoosting already uses every core in one fit (see _run_fits).
    jobs = scaling.fit_jobs(choice.kind, data.stats.rows, cv_folds, parallel=parallel)
    sample = training_sample(codes)
    score = _score_function(data.task)

    def fit_and_predict(rows: Any, predict_rows: Any) -> tuple[Any, Any]:
        """Fit on ``rows`` (None: all of them), then predict ``predict_rows`` (as class positions, or numbers)."""
        try:
            fitted = clone(choice.pipeline).fit(
                features if rows is None else features.iloc[rows], labels if rows is None else labels[rows]
            )
            guessed = fitted.predict(features.iloc[predict_rows])
            return fitted, np.asarray(guessed, dtype=np.float64) if regression else class_codes(guessed, classes)
        except ValueError as exc:  # in the fit's own thread, where its traceback says where it was raised
            if _raised_by_input_checks(exc):
                raise _InputRefusedError(str(exc)) from exc
            raise

    started = time.perf_counter()
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            progress.phase(
                "fitting",
                "fitting %s (%d fits, %d at a time; the training %s on %d of %d rows)",
                method,
                len(splits) + 1,
                jobs,
                "R²" if regression else "accuracy",
                len(sample),
                len(codes),
            )
            # Each fit's predictions run in its own job: the held-out rows' beside the final model's sample.
            results = _run_fits(fit_and_predict, [*splits, (None, sample)], jobs, progress)
            pipeline, sample_predicted = results[-1]
            predicted = np.full(len(labels), np.nan) if regression else np.full(len(labels), -1, dtype=np.int64)
            scores = []
            for (_, guessed), (_, test_rows) in zip(results[:-1], splits, strict=True):
                predicted[test_rows] = guessed
                scores.append(score(codes[test_rows], guessed))
            training_score = float(score(codes[sample], sample_predicted))
    except Exception as exc:
        raise _fit_failure(exc, choice, classes, uri) from exc
    seconds = time.perf_counter() - started
    found = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    baseline = [_baseline_score(codes, train_rows, test_rows, data.task) for train_rows, test_rows in splits]
    return Fitted(
        pipeline,
        classes,
        codes,
        splits,
        method,
        jobs,
        sample,
        predicted,
        scores,
        training_score,
        found,
        seconds,
        baseline,
    )


def _score_function(task: str) -> Callable[[Any, Any], float]:
    """The task's primary score of predictions against the truth: accuracy, or R²."""
    from sklearn.metrics import accuracy_score, r2_score

    if task == REGRESSION:
        return lambda truth, guessed: float(r2_score(truth, guessed))
    return lambda truth, guessed: float(accuracy_score(truth, guessed))


def _baseline_score(codes: Any, train_rows: Any, test_rows: Any, task: str) -> float:
    """The trivial predictor's score on one split: the training rows' majority class (accuracy), or their mean (R²)."""
    import numpy as np

    truth = codes[test_rows]
    if task == REGRESSION:
        from sklearn.metrics import r2_score

        return float(r2_score(truth, np.full(len(truth), float(np.mean(codes[train_rows])))))
    majority = int(np.bincount(codes[train_rows]).argmax())
    return float(np.mean(truth == majority))


# scikit-learn's checks of a fit's input (X and y): a ValueError raised in them is the data's fault.
INPUT_CHECK_MODULES = ("sklearn.utils.validation", "sklearn.utils.multiclass")
PROBE_ROWS_PER_CLASS = 10  # rows of each class in the clean data a failed fit's hyperparameters are tried on


class _InputRefusedError(Exception):
    """Internal: scikit-learn's input checks refused the data of a fit (raised in the fit's thread)."""


def _raised_by_input_checks(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside scikit-learn's input checks (the innermost frame of its traceback)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "")).startswith(INPUT_CHECK_MODULES)


def _fit_failure(exc: Exception, choice: ModelChoice, classes: list[Any], uri: str) -> PipelineError:
    """The named error for a failed fit, by whose fault it is.

    - scikit-learn's parameter validation (InvalidParameterError): the hyperparameters';
    - its input checks refused the data (``_InputRefusedError``): the dataset's;
    - a ValueError or OverflowError that the same estimator also raises on clean data of the same
      classes (``_fails_on_clean_data``): the hyperparameters' (a check scikit-learn makes only
      while fitting, such as penalty='l1' with solver='lbfgs');
    - anything else: a TrainingError, with scikit-learn's message.
    """
    from sklearn.utils._param_validation import InvalidParameterError

    shown = choice.shown
    if isinstance(exc, PipelineError):
        return exc
    if isinstance(exc, InvalidParameterError):
        return InvalidHyperparametersError(f"scikit-learn rejects the hyperparameters of {shown}: {exc}")
    if isinstance(exc, _InputRefusedError):
        return InvalidDatasetError(
            f"invalid dataset at {uri}: scikit-learn's input checks refuse it while fitting {shown}: {exc}; fix "
            "the values the message names"
        )
    if isinstance(exc, ValueError | OverflowError) and _fails_on_clean_data(choice.pipeline, classes):
        return InvalidHyperparametersError(
            f"scikit-learn cannot fit {shown} on {uri}: {exc}; the same hyperparameters fail on any data (tried on "
            "clean data of the same classes): change them"
        )
    return TrainingError(f"fitting {shown} on {uri} failed: {exc}")


def _fails_on_clean_data(pipeline: Any, classes: list[Any]) -> bool:
    """Whether the pipeline's estimator, as configured, fails to fit and predict on small clean data of ``classes``."""
    import numpy as np
    from sklearn.base import clone
    from sklearn.utils._param_validation import InvalidParameterError

    estimator = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    rng = np.random.default_rng(CV_SEED)
    if classes:
        labels = np.array([c for c in classes for _ in range(PROBE_ROWS_PER_CLASS)], dtype=object)
        if all(isinstance(c, int) for c in classes):
            labels = labels.astype(np.int64)
        positions = np.repeat(np.arange(len(classes)), PROBE_ROWS_PER_CLASS)
    else:  # a regressor: a positive target that grows with the first feature
        positions = np.repeat(np.arange(3), PROBE_ROWS_PER_CLASS)
        labels = positions + 1.0 + rng.uniform(0, 0.1, len(positions))
    features = np.column_stack([positions + rng.normal(0, 0.3, len(positions)), rng.normal(0, 1, len(positions))])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clone(estimator).fit(features, labels).predict(features)
    except (InvalidParameterError, ValueError, OverflowError):
        return True
    except Exception:  # any other failure says nothing about the hyperparameters
        return False
    return False


def measure(fitted: Fitted, task: str = CLASSIFICATION) -> Measures:
    """The measure step: accuracy per split, and the metrics of every held-out row's prediction against its label
    (regression: ``measure_regression``)."""
    if task == REGRESSION:
        return measure_regression(fitted)
    import numpy as np
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    classes = fitted.classes
    evaluated = np.sort(np.concatenate([test_rows for _, test_rows in fitted.splits]))
    truth, guessed = fitted.codes[evaluated], fitted.predicted[evaluated]
    positions = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(truth, guessed, labels=positions, zero_division=0)
    cv_accuracy = _fold_scores(fitted, len(evaluated))
    cv_metrics = {
        "balanced_accuracy": float(balanced_accuracy_score(truth, guessed)),
        "macro_f1": float(f1_score(truth, guessed, labels=positions, average="macro", zero_division=0)),
        "per_class": {
            str(c): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": {
            "labels": [_json_label(c) for c in classes],
            "matrix": confusion_matrix(truth, guessed, labels=positions).tolist(),
            "rows": "true label",
            "columns": "predicted label",
        },
    }
    score = {
        "name": "cv_accuracy",
        "value": cv_accuracy["mean"],
        "std": cv_accuracy["std"],
        "baseline": float(np.mean(fitted.baseline)) if fitted.baseline else None,
        "baseline_name": "majority class",
    }
    return Measures(cv_accuracy, cv_metrics, score)


def _fold_scores(fitted: Fitted, evaluated: int) -> dict[str, Any]:
    """The card's section of the primary score per split (``cv_accuracy`` or ``cv_r2``): mean, std, each, how."""
    import numpy as np

    scores = fitted.scores
    return {
        "mean": float(np.mean(scores)),
        "std": float(np.std(scores)),
        "folds": len(fitted.splits),
        "scores": [float(s) for s in scores],
        "method": fitted.method,
        "rows_evaluated": evaluated,
    }


def measure_regression(fitted: Fitted) -> Measures:
    """The measure step of a regression: R² per split, and R², RMSE, MAE and the median absolute error of every
    held-out row's prediction, the mean predictor's, the residuals' summary and a sample of (actual, predicted)."""
    import numpy as np
    from sklearn.metrics import mean_absolute_error, median_absolute_error, r2_score, root_mean_squared_error

    evaluated = np.sort(np.concatenate([test_rows for _, test_rows in fitted.splits]))
    truth, guessed = fitted.codes[evaluated], fitted.predicted[evaluated]
    fold_rmse, fold_mae, baseline_rmse = [], [], []
    for train_rows, test_rows in fitted.splits:
        fold_rmse.append(float(root_mean_squared_error(fitted.codes[test_rows], fitted.predicted[test_rows])))
        fold_mae.append(float(mean_absolute_error(fitted.codes[test_rows], fitted.predicted[test_rows])))
        mean = float(np.mean(fitted.codes[train_rows]))
        baseline_rmse.append(float(np.sqrt(np.mean((fitted.codes[test_rows] - mean) ** 2))))
    residuals = truth - guessed
    quantiles = np.quantile(residuals, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    cv_r2 = _fold_scores(fitted, len(evaluated))
    cv_metrics = {
        "r2": float(r2_score(truth, guessed)),
        "rmse": float(root_mean_squared_error(truth, guessed)),
        "mae": float(mean_absolute_error(truth, guessed)),
        "median_absolute_error": float(median_absolute_error(truth, guessed)),
        "baseline_rmse": float(np.mean(baseline_rmse)),
        "baseline_r2": float(np.mean(fitted.baseline)),
        "by_fold": {
            "rmse": {"mean": float(np.mean(fold_rmse)), "std": float(np.std(fold_rmse)), "scores": fold_rmse},
            "mae": {"mean": float(np.mean(fold_mae)), "std": float(np.std(fold_mae)), "scores": fold_mae},
        },
        "residuals": {
            "mean": float(np.mean(residuals)),
            "std": float(np.std(residuals)),
            **{
                name: float(value)
                for name, value in zip(("min", "p05", "p25", "median", "p75", "p95", "max"), quantiles, strict=True)
            },
            "of": "actual - predicted",
        },
    }
    shown = evaluated
    if len(evaluated) > CV_PREDICTIONS_SHOWN:
        shown = np.sort(np.random.default_rng(CV_SEED).choice(evaluated, size=CV_PREDICTIONS_SHOWN, replace=False))
    cv_predictions = {
        "actual": [float(v) for v in fitted.codes[shown]],
        "predicted": [float(v) for v in fitted.predicted[shown]],
        "shown": len(shown),
        "of": len(evaluated),
    }
    score = {
        "name": "cv_r2",
        "value": cv_r2["mean"],
        "std": cv_r2["std"],
        "baseline": cv_metrics["baseline_r2"],
        "baseline_name": "mean predictor",
    }
    return Measures(cv_r2, cv_metrics, score, cv_predictions)


def write_card(
    model: Target,
    dataset_uri: str,
    data: TrainingData,
    choice: ModelChoice,
    estimate: FitEstimate,
    fitted: Fitted,
    measures: Measures,
    *,
    description: DatasetDescription,
    hyperparameters: dict[str, Any],
    lineage: dict[str, Any] | None,
    sections: dict[str, Any] | None = None,
) -> TrainResult:
    """The write step: the pickled model and its card (``model_card``, with ``lineage`` and ``sections``), through
    ``write_model``."""
    payload = pickle.dumps(fitted.model, protocol=pickle.HIGHEST_PROTOCOL)
    metrics = model_card(dataset_uri, data, choice, estimate, fitted, measures, description, hyperparameters, payload)
    metrics |= sections or {}
    if lineage is not None:
        metrics["lineage"] = lineage | {
            "input_targets": [{"uri": dataset_uri, "sha256": data.stats.sha256}],
            "versions": lineage.get("versions", {}) | metrics["versions"],
        }
    wrote = write_model(model, payload, metrics)
    return TrainResult(wrote=wrote, metrics=metrics, seconds=fitted.seconds)


def model_card(
    dataset_uri: str,
    data: TrainingData,
    choice: ModelChoice,
    estimate: FitEstimate,
    fitted: Fitted,
    measures: Measures,
    description: DatasetDescription,
    hyperparameters: dict[str, Any],
    payload: bytes,
) -> dict[str, Any]:
    """The model card (``metrics.json``) of the model pickled as ``payload``, without its lineage."""
    import numpy as np
    import pandas as pd
    import sklearn

    stats, estimator, params, task = data.stats, choice.estimator, choice.params, data.task
    names = list(data.features.columns)
    numeric = [names[i] for i in choice.numeric]
    categorical = [names[i] for i in choice.categorical]
    card = {
        "card_version": CARD_VERSION,
        "task": task,
        "task_decision": data.decision.to_dict(),
        "score": measures.score,
        "rows": stats.rows,
        "classes": [_json_label(c) for c in fitted.classes],
        "class_counts": {str(k): v for k, v in stats.class_counts.items()},
        "dataset": _dataset_section(dataset_uri, data, choice, description),
        "input": {
            "columns": names,
            "label_column": stats.layout.label_name,
            "accepts": "a pandas DataFrame with these columns"
            + (", or a 2-D array or list of rows in this order" if not categorical else ""),
            "predict_proba": has_predict_proba(estimator, params, task),
        },
        "estimator": {
            "requested": choice.requested,
            "name": estimator,
            "chosen_because": choice.reason,
            "class": spec_of(estimator, task).class_path,
            "hyperparameters": params,
            "non_default_hyperparameters": non_default_hyperparameters(estimator, params, task),
        },
        "preprocessing": preprocessing_summary(
            estimator, choice.impute, numeric, categorical, task, choice.target_transform
        ),
        "hyperparameters": hyperparameters,
        "training_accuracy": fitted.training_accuracy,
        "training_accuracy_rows": len(fitted.sample),
        "cv_accuracy": measures.cv_accuracy,
        "cv_metrics": measures.cv_metrics,
        "warnings": fitted.warnings,
        "fit_seconds": round(fitted.seconds, 4),
        "fit_estimate": {
            "seconds": round(estimate.seconds, 4),
            "features": estimate.width,
            "jobs": fitted.jobs,
            "cores": cores(),
        },
        "scikit_learn_version": sklearn.__version__,
        "versions": {
            "python": platform.python_version(),
            "scikit_learn": sklearn.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "dataset_sha256": stats.sha256,
        "model_bytes": len(payload),
        "model_sha256": hashlib.sha256(payload).hexdigest(),
    }
    if task == REGRESSION:
        _regression_sections(card, data, choice, fitted, measures)
    return card


def _regression_sections(
    card: dict[str, Any], data: TrainingData, choice: ModelChoice, fitted: Fitted, measures: Measures
) -> None:
    """A regression card's own sections in place of the classification ones (``cv_r2``, ``training_r2``, ...)."""
    import numpy as np

    for name in ("cv_accuracy", "training_accuracy", "training_accuracy_rows"):
        card.pop(name, None)
    card["cv_r2"] = measures.cv_accuracy
    card["training_r2"] = fitted.training_accuracy
    card["training_r2_rows"] = len(fitted.sample)
    card["cv_predictions"] = measures.cv_predictions
    labels = data.labels
    card["target"] = {
        "column": data.stats.layout.label_name,
        "min": float(np.min(labels)),
        "max": float(np.max(labels)),
        "mean": float(np.mean(labels)),
        "std": float(np.std(labels)),
        "transform": choice.target_transform,
    }
    card["input"]["predict_proba"] = False
    card["input"]["predicts"] = "numbers" + (
        " (the regressor fits log1p of the target; predictions are expm1 of its output, in the target's units)"
        if choice.target_transform == "log"
        else ""
    )


def _dataset_section(
    dataset_uri: str, data: TrainingData, choice: ModelChoice, description: DatasetDescription
) -> dict[str, Any]:
    """The card's ``dataset``: the file, its description, and how it was read (with the columns used and left out)."""
    stats, features = data.stats, data.features
    names = list(features.columns)
    return {
        "uri": dataset_uri,
        "sha256": stats.sha256,
        "bytes": stats.bytes,
        "description": description.to_dict(),
        "resolved": stats.profile()
        | {
            "numeric_columns": [names[i] for i in choice.numeric],
            "categorical_columns": {names[i]: _categories(features[names[i]]) for i in choice.categorical},
            "dropped_columns": choice.dropped,
        },
    }


def _run_fits(
    fit_and_predict: Callable[[Any, Any], tuple[Any, Any]],
    jobs_rows: list[tuple[Any, Any]],
    jobs: int,
    progress: _Progress,
) -> list[tuple[Any, Any]]:
    """``fit_and_predict(rows, predict_rows)`` for each pair, ``jobs`` at a time in threads; the results in order.

    Threads, not loky processes (bench/fit_time.py, 2 cores): for SVC on 10,000 rows, 5 folds take
    0.19 s in threads, 0.29 s one after the other and 1.3 s in loky (its workers start and the data
    is pickled to them); libsvm releases the GIL. And a model pickled back from a loky worker does
    not give the same bytes as one fitted here, which concurrent executions rely on.
    HistGradientBoosting is fitted one fold after the other (the caller passes ``jobs`` 1): its
    OpenMP already uses every core, and fits side by side in threads oversubscribe them (100,000
    rows: 3.1 s one after the other, 7.5 s in threads; OpenMP limits set by threadpoolctl do not
    reach joblib's threads; loky's 2.4 s costs the determinism above).
    """
    from joblib import Parallel, delayed

    total = len(jobs_rows)
    out = []
    results = Parallel(n_jobs=jobs, backend="threading", return_as="generator")(
        delayed(fit_and_predict)(rows, predict_rows) for rows, predict_rows in jobs_rows
    )
    for done, result in enumerate(results, start=1):
        out.append(result)
        what = "the final fit" if done == total else f"fold {done} of {total - 1}"
        progress.step("fitting", "fitted and scored %s (%d of %d fits)", what, done, total, last=done == total)
    return out


def class_codes(values: Any, classes: list[Any]) -> Any:
    """Each value's position in ``classes`` (sorted, as ``np.unique`` orders them) as int64; -1 for none."""
    import numpy as np
    import pandas as pd

    return np.asarray(pd.Categorical(values, categories=classes).codes, dtype=np.int64)


def training_sample(codes: Any, limit: int | None = None) -> Any:
    """The sorted row positions the training accuracy is measured on: all, or a seeded sample of ``limit``
    (default ``TRAINING_ACCURACY_ROWS``).

    See mlpipe.scaling for the size: predicting every row costs SVC more than a fit.
    """
    import numpy as np

    limit = scaling.TRAINING_ACCURACY_ROWS if limit is None else limit
    if len(codes) <= limit:
        return np.arange(len(codes))
    return np.sort(np.random.default_rng(CV_SEED).choice(len(codes), size=limit, replace=False))


def _typed_class_weight(params: dict[str, Any], kind: str) -> dict[str, Any]:
    """JSON object keys are strings: with integer labels, a class_weight mapping is keyed by ints."""
    weights = params.get("class_weight")
    if kind == "integer" and isinstance(weights, dict):
        try:
            return params | {"class_weight": {int(k): v for k, v in weights.items()}}
        except ValueError as exc:
            raise InvalidHyperparametersError(f"class_weight keys must be the integer labels: {exc}") from exc
    return params


def _json_label(value: Any) -> Any:
    return value if isinstance(value, int) else str(value)


def _categories(column: Any, limit: int = 50) -> dict[str, Any]:
    counts = column.value_counts()
    return {"count": len(counts), "values": [str(v) for v in counts.index[:limit]], "shown": min(limit, len(counts))}
