"""How long a training will take, which estimator ``auto`` means, and how quality is estimated, by row count.

Standard library only (the plan step imports it through mlpipe.estimators); the constants are
measured by ``bench/fit_time.py`` on this repository's CI machine (2 cores) and written here by hand.

**The complexity model.** One fit of an estimator on ``n`` rows and ``d`` features (after
one-hot encoding) takes about ``c * n**a * d`` seconds; ``c`` and ``a`` are fitted per estimator
by the benchmark on Iris-shaped data (4 features, 3 classes, Gaussian noise around the Iris class
means with the Iris class standard deviations). The exponent of ``d`` is assumed, not measured.
A training is ``cv_folds`` fits on ``(k-1)/k`` of the rows plus the final fit (k-fold), or one
fit on 80 % plus the final fit (holdout), each with its predictions (the held-out rows; for the
final fit, a sample of ``TRAINING_ACCURACY_ROWS`` for the training accuracy); these jobs run in
parallel on the cores available (``cv_jobs``), except HistGradientBoosting's, which already uses
every core itself. SVC's predictions of all the rows cost about 1.8 fits (``PREDICT_FITS``); the
others' are negligible. The estimate is multiplied by ``SAFETY`` for what the benchmark does not see:
harder data (SVC's cost grows with its support vectors, more where classes overlap), a Lambda
vCPU slower than the benchmark's, and a busy machine.

**``estimator: auto``.** The exact RBF SVC (the default estimator) up to ``AUTO_SVC_MAX_ROWS``
(30,000) rows, HistGradientBoosting above. Measured by the benchmark (one fit, 2 cores; accuracy
on 20,000 fresh rows):

    rows        SVC            HGB            Nystroem(300) + LinearSVC
    10,000      0.09 s 0.9878  0.43 s 0.9849  0.62 s 0.9877
    30,000      0.53 s 0.9879  0.33 s 0.9875  2.65 s 0.9879
    100,000     4.64 s 0.9877  0.70 s 0.9878  11.3 s 0.9878
    300,000     38.1 s 0.9878  1.66 s 0.9877
    1,000,000   (~350 s)       6.05 s 0.9867  (~210 s)    (in brackets: the fitted model's extrapolation)

Below 30,000 rows SVC is the more accurate (HGB's trees need rows) and fast; from 30,000 rows on
HGB is as accurate and faster, and SVC's time grows as rows**1.87 (more on data with more class
overlap: more support vectors) with memory for its kernel cache. The approximate RBF SVM
(Nystroem + LinearSVC) is no more accurate than HGB at 100,000 rows and 16 times slower, so the
scalable choice is HGB: no scaling needed, low memory (binned features), sublinear to linear time.

**Holdout.** From ``HOLDOUT_MIN_ROWS`` (50,000) rows on, quality is estimated on one stratified
20 % holdout instead of k-fold: its 10,000 or more held-out rows give an accuracy with a standard
error of at most 0.5 percentage points (0.14 at 98 %), and it costs one fit instead of k.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from mlpipe.exceptions import TrainingTooLargeError

AUTO = "auto"

# (c, a) of seconds = c * rows**a * features for one fit, from
# `PYTHONPATH=layers/core/python .venv/bin/python -m bench.fit_time` (see docs/scaling.md, "Estimating and choosing").
FIT_CONSTANTS: dict[str, tuple[float, float]] = {
    "svc": (5.397e-10, 1.868),
    "linear_svc": (9.837e-09, 1.295),
    "logistic_regression": (1.698e-05, 0.834),
    "random_forest": (3.457e-06, 1.174),
    "hist_gradient_boosting": (3.193e-06, 0.942),
}
# What predicting costs, where it is not negligible: predicting all the rows once, in units of one
# fit on all of them (SVC's cost is rows x support vectors). Measured (2 cores): on 100,000 rows one
# SVC fit takes 4.5 s and predicting 20,000 rows with it 1.6 s, so all 100,000 rows 1.8 fits.
PREDICT_FITS: dict[str, float] = {"svc": 1.8}
# The training accuracy is measured on at most this many of the training rows (a seeded sample): a
# standard error of at most 0.5 percentage points, for a tenth of SVC's cost of predicting 100,000.
TRAINING_ACCURACY_ROWS = 10_000
# Estimators that use every core in one fit (OpenMP), so that fits side by side do not go faster.
MULTITHREADED = frozenset({"hist_gradient_boosting"})
SAFETY = 3.0
# Time kept for writing the model and its card, and for the function's own shutdown.
MARGIN_SECONDS = 30.0

# The largest dataset `auto` fits the exact SVC on (measured: see the module docstring).
AUTO_SVC_MAX_ROWS = 30_000
AUTO_SCALABLE = "hist_gradient_boosting"

# From this many rows on, a stratified holdout of HOLDOUT_FRACTION replaces k-fold.
HOLDOUT_MIN_ROWS = 50_000
HOLDOUT_FRACTION = 0.2


# Peak memory (the resident set) of a training, from bench/scale.py's runs on Iris-shaped data (4
# features and the label): 554 MB at 1,000,000 rows and 2,611 MB at 10,000,000 with
# hist_gradient_boosting, 730 MB at 100,000 with svc (its two fits side by side, each with its kernel
# cache of `cache_size` MB, 200 by default). The model: MEMORY_BASE_MB for the interpreter and the
# libraries, MEMORY_CELL_BYTES per cell of the file (the frame, the fits' copies of their rows, the
# estimator's own arrays), and SVC's caches: 620, 3,500 and 732 MB for those three.
MEMORY_BASE_MB = 300.0
MEMORY_CELL_BYTES = 64.0
SVC_CACHE_MB = 200.0  # SVC's default cache_size


@dataclass(frozen=True)
class Choice:
    """The estimator a run fits, and why (for ``auto``: the row count against the threshold)."""

    requested: str
    name: str
    reason: str


def choose_estimator(requested: str, rows: int) -> Choice:
    """The estimator to fit for ``requested`` on ``rows`` rows: itself, or for ``auto`` SVC or the scalable one."""
    if requested != AUTO:
        return Choice(requested, requested, "requested")
    if rows <= AUTO_SVC_MAX_ROWS:
        return Choice(AUTO, "svc", f"auto: {rows} rows <= {AUTO_SVC_MAX_ROWS}: the exact RBF SVC is fast enough")
    return Choice(
        AUTO,
        AUTO_SCALABLE,
        f"auto: {rows} rows > {AUTO_SVC_MAX_ROWS}: the exact SVC's fit time grows with the square of the rows; "
        f"{AUTO_SCALABLE} grows sublinearly, needs no scaling and little memory",
    )


def uses_holdout(rows: int) -> bool:
    """Whether quality is estimated on a stratified holdout (True) rather than k-fold."""
    return rows >= HOLDOUT_MIN_ROWS


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cv_jobs(fits: int) -> int:
    """How many fits run side by side: the cores available, capped by the fits."""
    return max(1, min(cores(), fits))


def fit_jobs(estimator: str, rows: int, cv_folds: int, *, parallel: bool = True) -> int:
    """How many of a training's fits run side by side: its folds (or holdout) and final fit, on the cores.

    One at a time for an estimator that uses every core in each fit (``MULTITHREADED``), or when not ``parallel``.
    """
    if not parallel or estimator in MULTITHREADED:
        return 1
    return cv_jobs(2 if uses_holdout(rows) else cv_folds + 1)


def fit_seconds(estimator: str, rows: int, features: int) -> float:
    """The complexity model's seconds for one fit of ``estimator`` (without ``SAFETY``)."""
    c, a = FIT_CONSTANTS[estimator]
    return float(c * math.pow(max(rows, 1), a) * max(features, 1))


def estimate_seconds(estimator: str, rows: int, features: int, cv_folds: int, jobs: int | None = None) -> float:
    """The estimated wall seconds of a whole training, times ``SAFETY``.

    A training is jobs of a fit and its predictions: one per fold (its ``(k-1)/k`` of the rows, then
    its held-out ``1/k``) or the holdout's, and the final fit with its training-accuracy sample.
    They share ``jobs`` cores; the longest job bounds the wall time from below.
    """
    if uses_holdout(rows):
        held_out = math.ceil(rows * HOLDOUT_FRACTION)
        pairs = [(rows - held_out, held_out)]
    else:
        pairs = [(rows * (cv_folds - 1) // cv_folds, rows // cv_folds)] * cv_folds
    pairs.append((rows, min(rows, TRAINING_ACCURACY_ROWS)))
    predict_all = PREDICT_FITS.get(estimator, 0.0) * fit_seconds(estimator, rows, features)
    each = [fit_seconds(estimator, fitted, features) + predict_all * predicted / rows for fitted, predicted in pairs]
    parallel = 1 if estimator in MULTITHREADED else (jobs or cv_jobs(len(pairs)))
    return SAFETY * max(sum(each) / parallel, *each)


def check_fits(estimate: float, remaining: float | None, *, estimator: str, rows: int, features: int) -> None:
    """Raise TrainingTooLargeError when ``estimate`` seconds do not fit in ``remaining`` minus the margin."""
    if remaining is None:
        return
    available = remaining - MARGIN_SECONDS
    if estimate <= available:
        return
    alternative = (
        f"choose `estimator: {AUTO}` (above {AUTO_SVC_MAX_ROWS} rows it fits {AUTO_SCALABLE}) or another estimator"
        if estimator != AUTO_SCALABLE
        else "choose another estimator (linear_svc or logistic_regression scale linearly)"
    )
    raise TrainingTooLargeError(
        f"training {estimator} on {rows} rows and {features} features is estimated at {estimate:.0f} s, but there "
        f"are {remaining:.0f} s left ({MARGIN_SECONDS:.0f} s of which are kept for writing the model): "
        f"{alternative}, train on fewer rows, or train where there is more time: on SageMaker "
        "(deploy with TrainOn=sagemaker; its SageMakerMaxRuntimeSeconds is the limit)"
    )


def estimate_memory_mb(estimator: str, rows: int, columns: int, jobs: int, cache_mb: float | None = None) -> float:
    """The estimated peak memory of a training (MB) on ``rows`` rows of ``columns`` columns, ``jobs`` fits at once."""
    caches = (SVC_CACHE_MB if cache_mb is None else cache_mb) * jobs if estimator == "svc" else 0.0
    return MEMORY_BASE_MB + rows * columns * MEMORY_CELL_BYTES / 1e6 + caches


def memory_limit_mb() -> int | None:
    """The function's memory in MB, as Lambda gives it (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``); None elsewhere."""
    value = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    return int(value) if value.isdigit() else None


def check_memory(estimate_mb: float, limit_mb: int | None, *, estimator: str, rows: int, columns: int) -> None:
    """Raise TrainingTooLargeError when ``estimate_mb`` is more than the function's ``limit_mb``.

    Checked before the file is read, so a training that would be killed for its memory
    (Lambda's ``Runtime.OutOfMemory``, after minutes of work) fails at once and says what to do.
    """
    if limit_mb is None or estimate_mb <= limit_mb:
        return
    raise TrainingTooLargeError(
        f"training {estimator} on {rows} rows of {columns} columns needs about {estimate_mb:.0f} MB of memory, but "
        f"the function has {limit_mb} MB: raise the train function's memory (the TrainMemorySize parameter, at most "
        "10240 MB), train on fewer rows, or on SageMaker (TrainOn=sagemaker) with a larger instance type"
    )
