"""Fit time of each estimator against rows, on Iris-shaped synthetic data; the constants of mlpipe.scaling.

The data: 4 features, 3 balanced classes, Gaussian noise around the Iris class means with the
Iris class standard deviations (per class and feature, from scikit-learn's bundled copy of Iris).
Each estimator is fitted as training fits it (``mlpipe.training.build_pipeline``: standard scaling
where the estimator needs it, scikit-learn's defaults, random_state 0) at sizes growing by about
3x until one fit takes longer than ``--cap`` seconds. Accuracy is measured on 20,000 fresh rows.

The complexity model is ``seconds = c * rows**a * features`` per fit; ``a`` and ``c`` are fitted
by least squares on log(seconds / features) against log(rows), on the 3 largest sizes that took
at least 0.05 s: the estimate matters for large data, and at small sizes a fixed overhead, not
the algorithm, dominates (fitted on every size, HGB's exponent comes out 0.4 and the estimate at
1,000,000 rows half the measured time). The features exponent is
assumed (1), not measured: the data always has 4.

Then the cross-validation backends: 5 folds of SVC and of HGB run sequentially, with joblib's
threads, with loky processes, and with threads whose OpenMP pools are limited to cores / n_jobs
(what loky does in its workers), each on ``n_jobs`` = the cores available.

Run it on a quiet machine: HistGradientBoosting's OpenMP threads (one per core) wait for each
other, so a single other busy process on these 2 cores made 1,000 rows take 5 to 16 s instead of
0.27 s (``--only hist_gradient_boosting`` reruns one estimator).

Last, ``--end-to-end``: ``train_model`` on Iris-shaped CSVs, its estimate (``fit_estimate``)
beside the time it took (``fit_seconds``), to check the safety factor.

    PYTHONPATH=layers/core/python .venv/bin/python -m bench.fit_time [--cap 8] [--quick] [--end-to-end]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from mlpipe.estimators import effective_hyperparameters
from mlpipe.storage import Store
from mlpipe.training import build_pipeline, train_model

ESTIMATORS = ("svc", "linear_svc", "logistic_regression", "random_forest", "hist_gradient_boosting", "nystroem_svc")
LADDER = (1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000)
TEST_ROWS = 20_000


def iris_like(rows: int, seed: int) -> tuple[Any, Any]:
    """``rows`` rows (a multiple of 3 or close) of Iris-shaped data: features and integer labels."""
    import numpy as np
    from sklearn.datasets import load_iris

    iris = load_iris()
    rng = np.random.default_rng(seed)
    labels = np.arange(rows) % 3
    means = np.array([iris.data[iris.target == k].mean(axis=0) for k in range(3)])
    stds = np.array([iris.data[iris.target == k].std(axis=0) for k in range(3)])
    features = means[labels] + rng.standard_normal((rows, 4)) * stds[labels]
    order = rng.permutation(rows)
    return features[order], labels[order]


def make(estimator: str) -> Any:
    """The unfitted pipeline, as training builds it (the Nystroem candidate: scaling, Nystroem, LinearSVC)."""
    from sklearn.kernel_approximation import Nystroem
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if estimator == "nystroem_svc":
        return Pipeline(
            [
                ("scale", StandardScaler()),
                ("kernel", Nystroem(n_components=300, random_state=0)),
                ("classifier", LinearSVC(random_state=0)),
            ]
        )
    return build_pipeline(estimator, effective_hyperparameters(estimator, {}), [0, 1, 2, 3], [], impute=False)


def fit_constants(points: list[tuple[int, float]], features: int) -> tuple[float, float]:
    """``(c, a)`` of ``seconds = c * rows**a * features``, least squares in log space on the 3 largest sizes."""
    usable = ([(n, t) for n, t in points if t >= 0.05] or points[-1:])[-3:]
    if len(usable) == 1:
        n, t = usable[0]
        return t / (n * features), 1.0
    xs = [math.log(n) for n, _ in usable]
    ys = [math.log(t / features) for _, t in usable]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    a = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return math.exp(my - a * mx), a


def ladder(estimator: str, cap: float, largest: int, repeat: int = 1) -> list[tuple[int, float, float]]:
    """``(rows, seconds, accuracy)`` per size, until a fit takes longer than ``cap`` (or would, extrapolated)."""
    test_x, test_y = iris_like(TEST_ROWS, seed=1)
    out: list[tuple[int, float, float]] = []
    for rows in (r for r in LADDER if r <= largest):
        if len(out) >= 2:  # skip a size the trend says would take far over the cap
            (n1, t1, _), (n2, t2, _) = out[-2], out[-1]
            slope = math.log(max(t2, 1e-3) / max(t1, 1e-3)) / math.log(n2 / n1)
            if t2 * (rows / n2) ** max(slope, 1.0) > 4 * cap:
                break
        x, y = iris_like(rows, seed=0)
        seconds = math.inf
        for _ in range(repeat):  # the fastest of the repeats: the machine is shared, noise only adds time
            pipeline = make(estimator)
            started = time.perf_counter()
            pipeline.fit(x, y)
            seconds = min(seconds, time.perf_counter() - started)
        accuracy = float((pipeline.predict(test_x) == test_y).mean())
        out.append((rows, seconds, accuracy))
        print(f"  {estimator:24} {rows:>9,} rows  {seconds:9.3f} s  accuracy {accuracy:.4f}", flush=True)
        if seconds > cap:
            break
    return out


def cv_backends(estimator: str, rows: int, folds: int = 5) -> dict[str, float]:
    """Wall seconds of ``folds`` CV fits: sequential, joblib threads (plain and OpenMP-limited) and loky."""
    from joblib import Parallel, delayed
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    x, y = iris_like(rows, seed=0)
    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=0).split(x, y))
    jobs = min(len(os.sched_getaffinity(0)), folds)
    pipeline = make(estimator)

    def one(train: Any) -> Any:
        return clone(pipeline).fit(x[train], y[train])

    out = {}
    started = time.perf_counter()
    for train, _ in splits:
        one(train)
    out["sequential"] = time.perf_counter() - started
    for backend in ("threading", "loky"):
        started = time.perf_counter()
        Parallel(n_jobs=jobs, backend=backend)(delayed(one)(train) for train, _ in splits)
        out[backend] = time.perf_counter() - started
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    with threadpool_limits(limits=max(1, len(os.sched_getaffinity(0)) // jobs), user_api="openmp"):
        Parallel(n_jobs=jobs, backend="threading")(delayed(one)(train) for train, _ in splits)
    out["threading, cores/jobs OpenMP threads each"] = time.perf_counter() - started
    return out


END_TO_END = (
    ("svc", 10_000),
    ("svc", 30_000),
    ("svc", 100_000),
    ("logistic_regression", 100_000),
    ("hist_gradient_boosting", 30_000),
    ("hist_gradient_boosting", 300_000),
)


def end_to_end(cases: tuple[tuple[str, int], ...] = END_TO_END) -> None:
    """Train through ``mlpipe.training.train_model`` on Iris-shaped CSVs; print the estimate beside the time taken."""
    import numpy as np

    print("\nend to end (train_model: the CV or holdout fits, the final fit and the predictions):")
    with tempfile.TemporaryDirectory() as tmp:
        for estimator, rows in cases:
            x, y = iris_like(rows, seed=0)
            path = Path(tmp) / f"{rows}.csv"
            table = np.column_stack([x.round(3), y]).astype(object)
            table[:, 4] = y
            path.write_text("".join(",".join(map(str, row)) + "\n" for row in table.tolist()))
            model = Path(tmp) / f"{estimator}-{rows}" / "model.pkl"
            result = train_model(
                Store.on_this_machine().target(str(path)),
                Store.on_this_machine().target(str(model)),
                estimator=estimator,
                hyperparameters={},
                cv_folds=5,
            )
            card = result.metrics
            print(
                f"  {estimator:24} {rows:>9,} rows  {card['cv_accuracy']['method']:38} "
                f"estimated {card['fit_estimate']['seconds']:7.2f} s  took {card['fit_seconds']:7.2f} s "
                f"({card['fit_estimate']['jobs']} at a time)",
                flush=True,
            )


def main() -> None:
    """Print each estimator's fit times, the fitted constants and the CV backend comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cap", type=float, default=8.0, help="stop an estimator's ladder after a fit this long")
    parser.add_argument("--largest", type=int, default=1_000_000, help="the largest size tried")
    parser.add_argument("--only", nargs="*", default=list(ESTIMATORS), help="these estimators only")
    parser.add_argument("--repeat", type=int, default=1, help="fit each size this many times, keep the fastest")
    parser.add_argument("--end-to-end", action="store_true", help="only the estimate against train_model's time")
    parser.add_argument("--cv-only", action="store_true", help="only the CV backend comparison")
    parser.add_argument("--no-cv", action="store_true", help="skip the CV backend comparison")
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    args = parser.parse_args()
    largest = 3_000 if args.quick else args.largest
    if args.end_to_end:
        end_to_end()
        return
    print(f"cores available: {len(os.sched_getaffinity(0))}; fit seconds on Iris-shaped data, 4 features")
    constants = {}
    for estimator in [] if args.cv_only else args.only:
        # A fresh process per estimator, so that one's thread pools and heap do not weigh on the next's times.
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            points = pool.submit(ladder, estimator, args.cap, largest, args.repeat).result()
        constants[estimator] = fit_constants([(n, t) for n, t, _ in points], 4)
    print("\nconstants of seconds = c * rows**a * features (one fit):")
    for estimator, (c, a) in constants.items():
        print(f"  {estimator:24} c = {c:.3e}  a = {a:.3f}")
    if args.no_cv:
        return
    svc_rows, hgb_rows = (1_000, 3_000) if args.quick else (10_000, 100_000)
    print("\n5-fold CV wall seconds by backend:")
    for estimator, rows in (("svc", svc_rows), ("hist_gradient_boosting", hgb_rows)):
        times = cv_backends(estimator, rows)
        print(f"  {estimator:24} {rows:>9,} rows  " + "  ".join(f"{k} {v:.2f} s" for k, v in times.items()))


if __name__ == "__main__":
    main()
