"""Regression: ``pipeline run`` on real datasets, its card's scores beside a plain scikit-learn cross-validation.

For each case: the CSV is served on 127.0.0.1, ``pipeline run --json`` trains it as a user runs it (a fresh
subprocess, in a temporary directory), and its card's ``score`` (CV R² over the folds, and the mean predictor's)
and RMSE are printed beside ``cross_validate`` of the same estimator, written here with scikit-learn alone (the
same preprocessing by hand, ``KFold(5, shuffle=True, random_state=0)``, no mlpipe code) on the same file. It
checks nothing; equal numbers say the pipeline measures what scikit-learn measures.

    python -m bench.regression                                  # diabetes, grunfeld, longley
    python -m bench.regression --case fair=/tmp/fair.csv:affairs  # any CSV with a header: NAME=PATH:LABEL

Built-in cases: ``diabetes`` (scikit-learn's, no header, the label last, the default estimator), ``grunfeld``
(tests/fixtures/regression, random_forest, the log transform), ``longley`` (the same, ridge, 3 folds). A
``--case`` is read with a header, trained with the defaults (task auto, estimator svc: SVR under regression).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_validate
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVR, LinearSVR

from pipeline_local.runner import serve_directory

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "regression"
PIPELINE = str(Path(sys.executable).with_name("pipeline"))


@dataclass
class Case:
    """A CSV, its label, and the ``pipeline run`` flags that train it."""

    name: str
    path: Path
    label: str | int  # a name (header) or a position (no header)
    header: bool = True
    estimator: str = "svc"
    target_transform: str = "none"
    cv_folds: int = 5
    flags: list[str] = field(default_factory=list)


def builtin_cases(workdir: Path) -> list[Case]:
    """diabetes (written from scikit-learn here), grunfeld and longley (the repository's fixtures)."""

    diabetes = workdir / "diabetes.csv"
    datasets.load_diabetes(as_frame=True, scaled=False).frame.to_csv(diabetes, index=False, header=False)
    return [
        Case("diabetes", diabetes, 10, header=False),
        Case(
            "grunfeld",
            FIXTURES / "grunfeld.csv",
            "invest",
            estimator="random_forest",
            target_transform="log",
            flags=["--label-column", "invest"],
        ),
        Case(
            "longley",
            FIXTURES / "longley.csv",
            "TOTEMP",
            estimator="ridge",
            cv_folds=3,
            flags=["--label-column", "TOTEMP"],
        ),
    ]


def run_pipeline(case: Case, url: str, cwd: Path) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """``pipeline run --json`` on the served file: the command, its summary and the model's card."""
    command = ["pipeline", "run", "--json", "--run-date", "2026-11-25", "--source-url", url, "--task", "auto"]
    command += ["--estimator", case.estimator, "--cv-folds", str(case.cv_folds), *case.flags]
    if case.target_transform != "none":
        command += ["--target-transform", case.target_transform]
    result = subprocess.run([PIPELINE, *command[1:]], cwd=cwd, capture_output=True, text=True, check=False)
    if not result.stdout.strip():
        raise SystemExit(f"pipeline run failed for {case.name}: {result.stderr[-2000:]}")
    summary = json.loads(result.stdout)
    if summary["status"] != "SUCCEEDED" and (summary.get("error") or {}).get("type") != "ModelRejectedError":
        raise SystemExit(f"pipeline run failed for {case.name}: {summary.get('error')}")
    model = summary["tasks"]["train"]["target"]  # a file:// URI
    card = json.loads(Path(model.removeprefix("file://")).with_name("metrics.json").read_text())
    return command, summary, card


def sklearn_cv(case: Case) -> dict[str, float]:
    """The same estimator, cross-validated by scikit-learn alone on the same file."""

    frame = pd.read_csv(case.path, header=0 if case.header else None)
    label = case.label if case.header else frame.columns[int(case.label)]
    y = frame[label].to_numpy(dtype=float)
    features = frame.drop(columns=[label])
    categorical = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    numeric = [c for c in features.columns if c not in categorical]
    name = {"svc": "svr", "linear_svc": "linear_svr", "logistic_regression": "ridge"}.get(
        case.estimator, case.estimator
    )
    regressor: Any = {
        "svr": SVR(),
        "linear_svr": LinearSVR(random_state=0),
        "ridge": Ridge(random_state=0),
        "random_forest": RandomForestRegressor(random_state=0),
        "hist_gradient_boosting": HistGradientBoostingRegressor(random_state=0),
    }[name]
    scaled = name in {"svr", "linear_svr", "ridge"}
    steps: list[Any] = []
    if case.target_transform == "log":
        steps.append(FunctionTransformer(np.log1p, inverse_func=np.expm1, check_inverse=False))
    if name in {"svr", "linear_svr"}:
        steps.append(StandardScaler())
    if steps:
        regressor = TransformedTargetRegressor(
            regressor=regressor, transformer=steps[0] if len(steps) == 1 else make_pipeline(*steps), check_inverse=False
        )
    transformers: list[Any] = [("numeric", StandardScaler() if scaled else "passthrough", numeric)]
    if categorical:
        transformers.append(("categorical", OneHotEncoder(handle_unknown="ignore"), categorical))
    model = Pipeline([("preprocess", ColumnTransformer(transformers)), ("regressor", regressor)])
    folds = KFold(n_splits=case.cv_folds, shuffle=True, random_state=0)
    scores = cross_validate(model, features, y, cv=folds, scoring=("r2", "neg_root_mean_squared_error"))
    return {
        "r2_mean": float(np.mean(scores["test_r2"])),
        "r2_std": float(np.std(scores["test_r2"])),
        "rmse_mean": float(-np.mean(scores["test_neg_root_mean_squared_error"])),
    }


def main(argv: list[str] | None = None) -> int:
    """Train each case with ``pipeline run`` and scikit-learn; print the comparison."""

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", default=[], help="NAME=PATH:LABEL (a CSV with a header)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cases = builtin_cases(workdir)
        for spec in args.case:
            name, _, rest = spec.partition("=")
            path, _, label = rest.rpartition(":")
            cases.append(Case(name, Path(path), label, flags=["--label-column", label]))
        www = workdir / "www"
        www.mkdir()
        for case in cases:
            (www / f"{case.name}.csv").write_bytes(case.path.read_bytes())
        with serve_directory(www) as server:
            port = server.server_address[1]
            for case in cases:
                cwd = workdir / case.name
                cwd.mkdir()
                command, summary, card = run_pipeline(case, f"http://127.0.0.1:{port}/{case.name}.csv", cwd)
                plain = sklearn_cv(case)
                score, rmse = card["score"], card["cv_metrics"]["by_fold"]["rmse"]["mean"]
                print(f"== {case.name}: {card['rows']} rows, {card['task_decision']['reason']}")
                print("   $ " + " ".join(command).replace(f"127.0.0.1:{port}", "127.0.0.1:PORT"))
                gate = summary.get("gate") or {}
                print(f"   summary: {summary['status']}; gate: {gate.get('reason') or summary.get('error')}")
                print(
                    f"   card:    {card['estimator']['class']} cv_r2 {score['value']:.4f} ± {score['std']:.4f} "
                    f"(mean predictor {score['baseline']:.4f}), RMSE {rmse:.4f}"
                )
                print(
                    f"   sklearn: cross_validate  r2 {plain['r2_mean']:.4f} ± {plain['r2_std']:.4f}, "
                    f"RMSE {plain['rmse_mean']:.4f}"
                )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
