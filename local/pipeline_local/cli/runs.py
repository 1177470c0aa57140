"""``pipeline run`` and ``pipeline backfill``: the state machines on this machine, and their summaries as text."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from mlpipe.backfill import expand_backfill, outcome
from mlpipe.exceptions import InvalidRequestError, UnknownModelError
from mlpipe.modelconfig import config_uri, list_configs
from mlpipe.naming import DEFAULT_MODEL
from mlpipe.observability import progress_on_console
from mlpipe.report import decision_lines
from mlpipe.storage import Store
from pipeline_local.cli.common import (
    DEFAULT_CONFIGS,
    EXIT_FAILED,
    EXIT_USAGE,
    RETRY_DELAY_SCALE_ENV,
    SAMPLE_SOURCE_ID,
    failed,
)
from pipeline_local.runner import LocalBackfill, LocalPipeline, RetryNotice, describe_event, local_aws, serve_sample

DATASET_FLAGS = (
    "header",
    "label_column",
    "feature_columns",
    "drop_columns",
    "categorical_columns",
    "delimiter",
    "missing",
    "labels",
)


def run(args: argparse.Namespace) -> int:
    """``pipeline run``: one execution of the pipeline's state machine, its progress, then its summary."""
    real_s3 = _uses_real_s3(args)
    execution_input = execution_input_from_args(args)

    def show_retry(notice: RetryNotice) -> None:
        print(f"{' ' * 14}{notice.describe()}", file=sys.stderr, flush=True)

    configs = str(Path(DEFAULT_CONFIGS).resolve())
    store = Store.on_this_machine()
    documented = bool(args.model) and store.target(config_uri(configs, args.model)).exists()
    if args.model and args.model != DEFAULT_MODEL and not documented and not args.source_url:
        # The bundled sample is Iris, the default model's data: never another model's (a mistyped name, say).
        known = ", ".join(list_configs(configs, store=store)) or "none"
        return failed(
            "run",
            UnknownModelError(
                f"model {args.model!r} has no configuration document under {configs} (documented: {known}) and no "
                "--source-url names its data: check the name, give --source-url to start a new model, or describe "
                "it with pipeline models put"
            ),
        )
    with contextlib.ExitStack() as stack:
        stack.enter_context(progress_on_console())  # a long download shows its progress on the console
        if args.source_url:
            execution_input["source_url"] = args.source_url
        elif not documented:  # a model with a document (pipeline models put) has its own source there
            execution_input["source_url"] = stack.enter_context(serve_sample())
            execution_input["source_id"] = SAMPLE_SOURCE_ID  # served on a new port each run: the same identity
        stack.enter_context(local_aws(real_s3=real_s3))
        env = {"TRAIN_ON": args.train_on, "MODEL_CONFIGS_URI": configs}
        pipeline = LocalPipeline(env=env, retry_delay_scale=_retry_delay_scale())
        summary = pipeline.run(
            execution_input, on_event=None if args.json else _show, on_retry=None if args.json else show_retry
        )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return 0 if summary["status"] == "SUCCEEDED" else EXIT_FAILED


def backfill(args: argparse.Namespace) -> int:
    """``pipeline backfill``: the backfill state machine, one line per date, then the totals."""
    request: dict[str, Any] = {"from": args.from_date, "to": args.to_date, "input": execution_input_from_args(args)}
    if args.max_concurrency is not None:
        request["max_concurrency"] = args.max_concurrency
    with progress_on_console():
        try:  # the expand step checks the same again; here nothing has started yet
            expand_backfill(request)
        except InvalidRequestError as exc:
            print(f"pipeline backfill: InvalidRequestError: {exc}", file=sys.stderr)
            return EXIT_USAGE
        with contextlib.ExitStack() as stack:
            request["input"]["source_url"] = args.source_url or stack.enter_context(serve_sample())
            if not args.source_url:
                request["input"]["source_id"] = SAMPLE_SOURCE_ID
            stack.enter_context(local_aws(real_s3=_uses_real_s3(args)))
            summary = LocalBackfill(env={"TRAIN_ON": args.train_on}, retry_delay_scale=_retry_delay_scale()).run(
                request, on_event=None if args.json else _show
            )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_backfill(summary))
    return 0 if summary["status"] == "SUCCEEDED" else EXIT_FAILED


def execution_input_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The execution input that the run options give (without ``source_url``, which may need a server first)."""
    execution_input: dict[str, Any] = {"artifact_root": args.artifact_root, "publish_uri": args.publish_uri}
    for key in (
        "model",
        "run_date",
        "estimator",
        "hyperparameters",
        "cv_folds",
        "force",
        "max_source_bytes",
        "min_cv_accuracy",
        "max_regression",
        "on_schema_change",
        "max_drift",
        "task",
        "target_transform",
        "min_lift_over_baseline",
    ):
        if getattr(args, key, None) is not None:
            execution_input[key] = getattr(args, key)
    dataset = dataset_from_args(args)
    if dataset is not None:
        execution_input["dataset"] = dataset
    return execution_input


def dataset_from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """The execution input's ``dataset`` object from ``--dataset`` and the single flags, or None if none is given."""
    description = dict(args.dataset or {})
    for name in DATASET_FLAGS:
        value = getattr(args, name)
        if value is not None:
            description[name] = value
    return description or None


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as text, like Luigi's execution summary."""
    model = f" of model {summary['model']}" if summary.get("model") else ""
    lines = ["", f"===== Summary of run {summary.get('run_date')}{model} ====="]
    for name, task in summary.get("tasks", {}).items():
        lines.append(f"  {name:<9} {task['state']:<8} {task.get('target') or ''}")
    if summary.get("tasks"):
        lines.extend(f"  {label + ':':<10} {text}" for label, text in decision_lines(summary))
    error = summary.get("error")
    if error:
        lines.append(f"  FAILED in {error.get('task')}: {error.get('type')}: {error.get('message')}")
    else:
        ran = [name for name, task in summary.get("tasks", {}).items() if task["state"] == "ran"]
        lines.append("  SUCCEEDED: " + (f"ran {', '.join(ran)}" if ran else "everything was already present"))
    return "\n".join(lines)


def format_backfill(summary: dict[str, Any]) -> str:
    """The backfill's summary as text: one line per date, then the totals."""
    runs = summary.get("runs", [])
    lines = ["", f"===== Summary of the backfill: {len(runs)} date(s) ====="]
    for each in runs:
        state = outcome(each)
        error = each.get("error")
        if error:
            note = f"{error.get('task')}: {error.get('type')}: {error.get('message')}"
        else:
            ran = [name for name, task in each.get("tasks", {}).items() if task["state"] == "ran"]
            note = f"ran {', '.join(ran)}" if ran else "everything was already present"
        lines.append(f"  {each.get('run_date')}  {state:<8} {note}")
    if summary.get("error"):
        error = summary["error"]
        lines.append(f"  the backfill failed: {error.get('type')}: {error.get('message')}")
    totals = summary.get("totals", {})
    lines.append(
        f"  {summary['status']}: ran {totals.get('ran', 0)}, present {totals.get('present', 0)}, "
        f"failed {totals.get('failed', 0)}"
    )
    return "\n".join(lines)


def _show(event: dict[str, Any]) -> None:
    line = describe_event(event)
    if line:
        print(line, file=sys.stderr, flush=True)


def _uses_real_s3(args: argparse.Namespace) -> bool:
    return any(str(uri).startswith("s3://") for uri in (args.artifact_root, args.publish_uri))


def _retry_delay_scale() -> float:
    text = os.environ.get(RETRY_DELAY_SCALE_ENV, "1")
    try:
        scale = float(text)
    except ValueError:
        scale = -1.0
    if not scale >= 0:
        raise SystemExit(f"pipeline run: {RETRY_DELAY_SCALE_ENV}={text!r} must be a number >= 0")
    return scale
