"""The ``pipeline`` command: run the whole state machine locally, or invoke one function with an event file.

pipeline run [--source-url URL] [--artifact-root URI] [--publish-uri URI] [--run-date YYYY-MM-DD]
             [--estimator NAME] [--hyperparameters JSON] [--cv-folds N] [dataset flags] [--json]
pipeline invoke FUNCTION EVENT_FILE [--offline]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

DEFAULT_ROOT = Path(".pipeline")
SAMPLE_SOURCE_ID = "sample:iris"
EXIT_FAILED = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pipeline`` console script; returns the exit status."""
    parser = argparse.ArgumentParser(prog="pipeline", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the state machine on this machine (moto + in-process handlers)")
    run.add_argument("--source-url", help="dataset URL (default: the bundled Iris sample, served on 127.0.0.1)")
    run.add_argument(
        "--artifact-root",
        default=str(DEFAULT_ROOT / "artifacts"),
        help="where the dataset and model go: a directory or s3://bucket/prefix (default: %(default)s)",
    )
    run.add_argument(
        "--publish-uri",
        default=str(DEFAULT_ROOT / "published"),
        help="where the model is published: a directory or s3://bucket/prefix (default: %(default)s)",
    )
    run.add_argument("--run-date", help="YYYY-MM-DD (default: today, UTC)")
    run.add_argument(
        "--estimator",
        help="svc (default), linear_svc, logistic_regression, random_forest or hist_gradient_boosting",
    )
    run.add_argument(
        "--hyperparameters", type=_json_object, help="the estimator's hyperparameters as JSON, e.g. '{\"C\": 2}'"
    )
    run.add_argument("--cv-folds", type=int, help="folds of cross-validation (default 5)")
    run.add_argument(
        "--force",
        choices=["download", "train", "upload"],
        help="run this task and every later one even though their outputs exist (new targets; nothing overwritten)",
    )
    _add_dataset_arguments(run)
    run.add_argument("--json", action="store_true", help="print only the summary, as JSON, on stdout")

    invoke = commands.add_parser("invoke", help="invoke one function's handler with an event file, without Docker")
    invoke.add_argument("function", choices=["plan", "download", "train", "upload", "report"])
    invoke.add_argument("event", type=Path, help="an event file, e.g. events/download.json")
    invoke.add_argument(
        "--offline",
        action="store_true",
        help="S3 in memory (moto), the bundled sample as the source, and missing inputs made first",
    )

    _add_status_command(commands)
    _add_predict_command(commands)
    _add_report_command(commands)

    args = parser.parse_args(argv)
    # Powertools: no EMF metric blobs on stdout (it carries the summary), and only warnings in the logs.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    # moto's interpreter logs a failed execution with a traceback; the summary already says it better.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "status":
        return _status(args)
    if args.command == "predict":
        return _predict(args)
    if args.command == "report":
        return _report(args)
    if args.command == "run":
        return _run(args)
    return _invoke(args)


def _add_status_command(commands: Any) -> None:
    """``pipeline status``: every dataset, model and published model found, by run date."""
    status = commands.add_parser(
        "status",
        help="what exists: datasets, models and published models by run date, with identities and states",
        description="List every dataset, model and published model under the roots, by run date: identity, state "
        "(present, or incomplete: a model without its card), size, when it was made; for models the CV accuracy "
        "and the estimator with its non-default hyperparameters; the newest published model of each date.",
    )
    dates = status.add_mutually_exclusive_group()
    dates.add_argument("--run-date", help="one date, YYYY-MM-DD")
    dates.add_argument("--from", dest="first", help="the first date of a range, YYYY-MM-DD")
    status.add_argument("--to", dest="last", help="the last date of a range, YYYY-MM-DD (with --from)")
    status.add_argument("--artifact-root", default=str(DEFAULT_ROOT / "artifacts"), help="default: %(default)s")
    status.add_argument("--publish-uri", default=str(DEFAULT_ROOT / "published"), help="default: %(default)s")
    status.add_argument("--json", action="store_true", help='print {"runs": [...]} as JSON')


def _status(args: argparse.Namespace) -> int:
    from mlpipe.exceptions import PipelineError
    from mlpipe.status import collect_status, format_status

    first, last = (args.run_date, args.run_date) if args.run_date else (args.first, args.last)
    try:
        status = collect_status(args.artifact_root, args.publish_uri, first=first, last=last)
    except PipelineError as exc:
        print(f"pipeline status: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0


def _add_predict_command(commands: Any) -> None:
    """``pipeline predict``: the champion's (or a given model's) prediction for every row of a CSV."""
    predict = commands.add_parser(
        "predict",
        help="predict every row of a CSV with the champion (or --model), read like the model's training data",
        description="Load the champion under --publish-uri (or the model at --model), checked against its card "
        "(sha256, scikit-learn version), read the CSV with the model's dataset description (delimiter, header, "
        "column names) and write one prediction per row, with class probabilities where the model has them. When "
        "the label column is in the file, it is not used to predict and the accuracy on it is reported.",
    )
    source = predict.add_mutually_exclusive_group()
    source.add_argument("--model", help="a model.pkl: a path, file:// or s3:// URI (default: the champion)")
    source.add_argument(
        "--publish-uri", default=str(DEFAULT_ROOT / "published"), help="where the champion is (default: %(default)s)"
    )
    predict.add_argument("--input", required=True, type=Path, help="the CSV to predict")
    predict.add_argument("--output", type=Path, help="write the predictions' CSV here (default: stdout)")
    predict.add_argument(
        "--json",
        action="store_true",
        help='print {"model_uri", "predictions", "probabilities", "accuracy"} as JSON instead of a CSV',
    )


def _predict(args: argparse.Namespace) -> int:
    from mlpipe.exceptions import PipelineError
    from mlpipe.predicting import predict_file

    try:
        result = predict_file(args.input, model_uri=args.model, publish_uri=None if args.model else args.publish_uri)
    except (PipelineError, OSError) as exc:
        print(f"pipeline predict: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if result.accuracy is not None:
        print(
            f"accuracy on the label column {result.label_column!r}: {result.accuracy:.4f} "
            f"({result.labelled_rows} rows) with {result.model_uri}",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    elif args.output is not None:
        with args.output.open("w", newline="", encoding="utf-8") as handle:
            result.write_csv(handle)
        print(f"wrote {len(result.predictions)} predictions to {args.output}", file=sys.stderr)
    else:
        result.write_csv(sys.stdout)
    return 0


def _add_report_command(commands: Any) -> None:
    """``pipeline report``: one self-contained HTML page with the pipeline's history."""
    report = commands.add_parser(
        "report",
        help="write one self-contained HTML page: CV accuracy per run date, the champion's timeline and its metrics",
        description="Write an HTML file (inline SVG, no scripts, nothing fetched) with every model's CV accuracy by "
        "run date (published, champion, and trained but not published), the champion's promotions and rollbacks, "
        "and the current champion's confusion matrix and per-class precision and recall.",
    )
    report.add_argument("--html", required=True, type=Path, help="the HTML file to write")
    report.add_argument("--artifact-root", default=str(DEFAULT_ROOT / "artifacts"), help="default: %(default)s")
    report.add_argument("--publish-uri", default=str(DEFAULT_ROOT / "published"), help="default: %(default)s")


def _report(args: argparse.Namespace) -> int:
    from mlpipe.exceptions import PipelineError
    from mlpipe.reporting_html import write_report

    try:
        summary = write_report(args.html, artifact_root=args.artifact_root, publish_uri=args.publish_uri)
    except (PipelineError, OSError) as exc:
        print(f"pipeline report: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"wrote {args.html}: {summary['models']} models over {summary['run_dates']} run dates, "
        f"{summary['champion_changes']} champion changes"
    )
    return 0


def _add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """The dataset description's flags; together they make the execution input's ``dataset`` object."""
    group = parser.add_argument_group("the dataset (see README: Your own data)")
    group.add_argument("--dataset", type=_json_object, help="the whole description as JSON; the flags below win")
    group.add_argument("--header", choices=["auto", "true", "false"], help="is the first row a header (default auto)")
    group.add_argument("--label-column", type=_column, help="label column: a name or a 0-based index (default -1)")
    group.add_argument("--feature-columns", type=_column_list, help="columns to train on: A,B,... (default: all)")
    group.add_argument("--drop-columns", type=_column_list, help="columns not to train on: A,B,...")
    group.add_argument("--delimiter", choices=[",", ";", "tab", "|"], help="field delimiter (default ',')")
    group.add_argument("--missing", choices=["reject", "impute"], help="empty or NA cells (default reject)")
    group.add_argument("--labels", type=_column_list, help="allow-list of label values: A,B,...")


DATASET_FLAGS = ("header", "label_column", "feature_columns", "drop_columns", "delimiter", "missing", "labels")


def dataset_from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """The execution input's ``dataset`` object from ``--dataset`` and the single flags, or None if none is given."""
    description = dict(args.dataset or {})
    for name in DATASET_FLAGS:
        value = getattr(args, name)
        if value is not None:
            description[name] = value
    return description or None


def _column(text: str) -> str | int:
    """A column given on the command line: an integer is an index, anything else a name."""
    stripped = text.strip()
    return int(stripped) if stripped.lstrip("+-").isdigit() else stripped


def _column_list(text: str) -> list[str | int]:
    return [_column(part) for part in text.split(",") if part.strip()]


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _run(args: argparse.Namespace) -> int:
    from pipeline_local.runner import LocalPipeline, describe_event, local_aws, serve_sample

    real_s3 = any(str(uri).startswith("s3://") for uri in (args.artifact_root, args.publish_uri))
    execution_input: dict[str, Any] = {"artifact_root": args.artifact_root, "publish_uri": args.publish_uri}
    for key in ("run_date", "estimator", "hyperparameters", "cv_folds", "force"):
        if getattr(args, key) is not None:
            execution_input[key] = getattr(args, key)
    dataset = dataset_from_args(args)
    if dataset is not None:
        execution_input["dataset"] = dataset

    def show(event: dict[str, Any]) -> None:
        line = describe_event(event)
        if line:
            print(line, file=sys.stderr, flush=True)

    with contextlib.ExitStack() as stack:
        execution_input["source_url"] = args.source_url or stack.enter_context(serve_sample())
        if not args.source_url:  # served on a new port each run: named so that its identity stays the same
            execution_input["source_id"] = SAMPLE_SOURCE_ID
        stack.enter_context(local_aws(real_s3=real_s3))
        pipeline = LocalPipeline()
        summary = pipeline.run(execution_input, on_event=None if args.json else show)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return 0 if summary["status"] == "SUCCEEDED" else EXIT_FAILED


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as text, like Luigi's execution summary."""
    lines = ["", f"===== Summary of run {summary.get('run_date')} ====="]
    for name, task in summary.get("tasks", {}).items():
        lines.append(f"  {name:<9} {task['state']:<8} {task.get('target') or ''}")
    error = summary.get("error")
    if error:
        lines.append(f"  FAILED in {error.get('task')}: {error.get('type')}: {error.get('message')}")
    else:
        ran = [name for name, task in summary.get("tasks", {}).items() if task["state"] == "ran"]
        lines.append("  SUCCEEDED: " + (f"ran {', '.join(ran)}" if ran else "everything was already present"))
    return "\n".join(lines)


def _invoke(args: argparse.Namespace) -> int:
    from pipeline_local.lambdas import LambdaContext, error_payload, load_handler

    try:
        event = json.loads(args.event.read_text())
    except (OSError, ValueError) as exc:
        print(f"pipeline invoke: cannot read the event file {args.event}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with _offline(args.function, event) if args.offline else contextlib.nullcontext(event) as prepared:
        handler = load_handler(args.function)
        try:
            result = handler(prepared, LambdaContext(args.function))
        except Exception as exc:
            print(json.dumps(error_payload(exc) | {"stackTrace": None}, indent=2))
            return EXIT_FAILED
    print(json.dumps(result, indent=2))
    return 0


@contextlib.contextmanager
def _offline(function: str, event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """S3 in moto with the event's buckets created, the sample as source, and the inputs the function needs."""
    from pipeline_local.lambdas import REPO_ROOT, LambdaContext, load_handler
    from pipeline_local.runner import LOCAL_ENV, _environment, local_aws, serve_sample

    with serve_sample() as sample_url, local_aws(), _environment(LOCAL_ENV):
        import boto3

        event = dict(event)
        if "source_url" in event:
            event["source_url"] = sample_url
        # The deploy-time defaults a plan reads when the input names no roots (events/env.json for sam local).
        defaults = json.loads((REPO_ROOT / "events" / "env.json").read_text())["Parameters"]
        for name, value in defaults.items():
            os.environ.setdefault(name, value)
        s3 = boto3.client("s3")
        for value in [*event.values(), *defaults.values()]:
            if isinstance(value, str) and value.startswith("s3://"):
                with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                    s3.create_bucket(Bucket=value[5:].split("/", 1)[0])
        # Make the function's inputs, by the layout's conventions (siblings in the run's folder).
        run_date = event.get("run_date", "2026-01-01")
        model_uri = event.get("model_uri")
        dataset_uri = event.get("dataset_uri") or (model_uri.rsplit("/", 1)[0] + "/dataset.csv" if model_uri else None)
        if function in {"train", "upload"} and dataset_uri:
            print(f"(offline) making the input {dataset_uri}", file=sys.stderr)
            load_handler("download")(
                {"run_date": run_date, "source_url": sample_url, "dataset_uri": dataset_uri}, LambdaContext("download")
            )
        if function == "upload" and model_uri:
            print(f"(offline) making the input {model_uri}", file=sys.stderr)
            load_handler("train")(
                {"run_date": run_date, "dataset_uri": dataset_uri, "model_uri": model_uri}, LambdaContext("train")
            )
        yield event


if __name__ == "__main__":
    sys.exit(main())
