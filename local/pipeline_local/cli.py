"""The ``pipeline`` command: run the whole state machine locally, or invoke one function with an event file.

pipeline run [--source-url URL] [--artifact-root URI] [--publish-uri URI] [--run-date YYYY-MM-DD]
             [--estimator NAME] [--hyperparameters JSON] [--cv-folds N] [--force TASK] [dataset flags]
             [--max-source-bytes N] [--json] [--verbose]
pipeline invoke FUNCTION EVENT_FILE [--offline] [--verbose]
pipeline status [--run-date D | --from D1 --to D2] [--json]
pipeline backfill --from YYYY-MM-DD --to YYYY-MM-DD [--max-concurrency N] [the run options but --run-date]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline_local.environment import temporary_environment
from pipeline_local.lambdas import FUNCTIONS

DEFAULT_ROOT = Path(".pipeline")
DEFAULT_ARTIFACTS = str(DEFAULT_ROOT / "artifacts")
DEFAULT_PUBLISHED = str(DEFAULT_ROOT / "published")
# The bundled sample is served on a new port each run; it enters the dataset's identity under this
# name instead, with its own checksum, so that editing the file makes a new dataset.
SAMPLE_SOURCE_ID = (
    "sample:iris@"
    + hashlib.sha256((Path(__file__).resolve().parent / "data" / "iris.data").read_bytes()).hexdigest()[:12]
)
EXIT_FAILED = 1
EXIT_USAGE = 2
DESCRIPTION = (
    "Run the training pipeline's state machine on this machine (its real ASL, the real handlers "
    "in-process, no AWS account needed), or invoke one function's handler with an event file."
)
RUN_DESCRIPTION = (
    "Execute statemachine/pipeline.asl.json on moto's Step Functions interpreter, each Lambda task "
    "running the real handler in this process. Prints each state as it starts and ends, each retry, "
    "then the run's summary. Only missing outputs are made: a second run reports every task present. "
    "Exit status 0 when the run succeeded, 1 when it failed, 2 on a usage error."
)
INVOKE_DESCRIPTION = (
    "Run one function's real handler in this process with an event file (events/*.json), like "
    "`sam local invoke` but without Docker. Storage is real S3 (or AWS_ENDPOINT_URL, which makes it a "
    "local run that may download from 127.0.0.1) unless --offline."
)
# Set for the handlers when errors should be readable lines (mlpipe.observability), i.e. unless --verbose.
CONSOLE_ERRORS_ENV = "MLPIPE_CONSOLE_ERRORS"
# Scales the state machine's Retry intervals in a local run (0: retry at once); for tests and impatient people.
RETRY_DELAY_SCALE_ENV = "MLPIPE_RETRY_DELAY_SCALE"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pipeline`` console script; returns the exit status."""
    parser = _Parser(prog="pipeline", description=DESCRIPTION)
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_SubcommandParser)

    run = commands.add_parser(
        "run", help="run the state machine on this machine (moto + in-process handlers)", description=RUN_DESCRIPTION
    )
    _add_run_arguments(run)

    backfill = commands.add_parser(
        "backfill",
        help="run the backfill state machine: one pipeline run per date, at most N at a time",
        description="Run the backfill state machine (statemachine/backfill.asl.json) on this machine: one child "
        "execution of the pipeline per date from --from to --to, at most --max-concurrency at a time, each resuming "
        "what exists; one line per date and the totals. Exit status 0 only when every date succeeded.",
    )
    backfill.add_argument("--from", dest="from_date", required=True, metavar="YYYY-MM-DD", help="first date")
    backfill.add_argument("--to", dest="to_date", required=True, metavar="YYYY-MM-DD", help="last date (included)")
    backfill.add_argument(
        "--max-concurrency",
        type=int,
        help="at most this many dates at once (default: the BackfillMaxConcurrency default)",
    )
    _add_run_arguments(backfill, run_date=False)

    invoke = commands.add_parser(
        "invoke",
        help="invoke one function's handler with an event file, without Docker",
        description=INVOKE_DESCRIPTION,
    )
    _add_verbose(invoke)
    invoke.add_argument("function", choices=FUNCTIONS)
    invoke.add_argument("event", type=Path, help="an event file, e.g. events/download.json")
    invoke.add_argument(
        "--offline",
        action="store_true",
        help="S3 in memory (moto), the bundled sample as the source, and missing inputs made first",
    )

    _add_status_command(commands)
    _add_champion_commands(commands)
    _add_predict_command(commands)
    _add_report_command(commands)

    args = parser.parse_args(argv)
    # Powertools: no EMF metric blobs on stdout (it carries the summary), and only warnings in the logs.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    verbose = getattr(args, "verbose", False)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO" if verbose else "WARNING")
    # moto's interpreter logs a failed execution with a traceback; the summary already says it better.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = {} if verbose else {CONSOLE_ERRORS_ENV: os.environ.get(CONSOLE_ERRORS_ENV, "true")}
    with contextlib.ExitStack() as stack:
        stack.enter_context(temporary_environment(console))  # for this command only (main is also called in-process)
        if args.command in {"run", "backfill", "invoke"}:  # a long download shows its progress on the console
            from mlpipe.observability import progress_on_console

            stack.enter_context(progress_on_console())
        handler = {
            "status": _status,
            "predict": _predict,
            "report": _report,
            "run": _run,
            "backfill": _backfill,
            "invoke": _invoke,
        }.get(args.command, _champion)  # champion, promote, rollback
        return handler(args)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that takes no abbreviations of long options (``--run-dat`` is an error)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


class _SubcommandParser(_Parser):
    """A subcommand's parser: an argument it does not know is reported with its own usage, not the top level's.

    (argparse's subparsers hand unknown arguments back to the main parser, which names only itself.)
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse like ``parse_args``: unknown arguments are an error of this subcommand."""
        parsed, unknown = super().parse_known_args(args, namespace)
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(unknown)}")
        return parsed, unknown


class _Version(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("mlpipe")
        except PackageNotFoundError:
            installed = "unknown (not installed)"
        print(f"{parser.prog} {installed}")
        parser.exit()


def _add_run_extras(run: argparse.ArgumentParser) -> None:
    """The ``run`` options beyond the execution input's basic fields."""
    run.add_argument(
        "--max-source-bytes",
        type=_max_source_bytes,
        metavar="N",
        help="refuse a source larger than N bytes (default 64 MiB = 67108864, at most 5 GiB = 5368709120)",
    )
    _add_verbose(run)


def _add_verbose(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--verbose",
        action="store_true",
        help="the functions' JSON logs at INFO level, with a traceback for every failure "
        "(default: an expected failure is one line)",
    )


def _add_run_arguments(parser: argparse.ArgumentParser, *, run_date: bool = True) -> None:
    """The options of one run (the execution input's fields), for ``run`` and, without ``--run-date``, ``backfill``."""
    parser.add_argument("--source-url", help="dataset URL (default: the bundled Iris sample, served on 127.0.0.1)")
    parser.add_argument(
        "--artifact-root",
        default=DEFAULT_ARTIFACTS,
        help="where the dataset and model go: a directory or s3://bucket/prefix (default: %(default)s)",
    )
    parser.add_argument(
        "--publish-uri",
        default=DEFAULT_PUBLISHED,
        help="where the model is published: a directory or s3://bucket/prefix (default: %(default)s)",
    )
    if run_date:
        parser.add_argument("--run-date", type=_run_date, help="YYYY-MM-DD (default: today, UTC)")
    parser.add_argument(
        "--estimator",
        help="svc (default), linear_svc, logistic_regression, random_forest, hist_gradient_boosting or auto "
        "(chosen by the row count)",
    )
    parser.add_argument(
        "--hyperparameters", type=_json_object, help="the estimator's hyperparameters as JSON, e.g. '{\"C\": 2}'"
    )
    parser.add_argument("--cv-folds", type=int, help="folds of cross-validation (default 5)")
    parser.add_argument(
        "--force",
        choices=["download", "train", "upload"],
        help="run this task and every later one even though their outputs exist (new targets; nothing overwritten)",
    )
    _add_dataset_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print only the summary, as JSON, on stdout")
    parser.add_argument("--min-cv-accuracy", type=float, help="the gate: publish only models with CV accuracy >= this")
    parser.add_argument(
        "--max-regression", type=float, help="the gate: publish only models at most this below the champion's accuracy"
    )
    parser.add_argument(
        "--train-on",
        choices=["lambda", "sagemaker"],
        default="lambda",
        help="the deployment's TrainOn: the train function (default), or a SageMaker training job, run here "
        "in-process with the container's contract (see README: Training on SageMaker)",
    )
    _add_run_extras(parser)


def _run_date(text: str) -> str:
    from mlpipe.config import parse_run_date
    from mlpipe.exceptions import PipelineError

    try:
        return parse_run_date(text).isoformat()
    except PipelineError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _max_source_bytes(text: str) -> int:
    from mlpipe.config import check_max_source_bytes
    from mlpipe.exceptions import PipelineError

    try:
        return check_max_source_bytes(int(text.strip()), "--max-source-bytes")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of bytes") from exc
    except PipelineError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _retry_delay_scale() -> float:
    text = os.environ.get(RETRY_DELAY_SCALE_ENV, "1")
    try:
        scale = float(text)
    except ValueError:
        scale = -1.0
    if not scale >= 0:
        raise SystemExit(f"pipeline run: {RETRY_DELAY_SCALE_ENV}={text!r} must be a number >= 0")
    return scale


def _add_champion_commands(commands: Any) -> None:
    """``pipeline champion``, ``promote`` and ``rollback``: the current model to serve, and setting it by hand."""
    champion = commands.add_parser(
        "champion",
        help="the current champion and its history",
        description="Print the current champion (the model to serve, champion.json) and every change before it.",
    )
    promote = commands.add_parser(
        "promote",
        help="make a published model the champion by hand",
        description="Make a published model of a run date the champion (checked: it exists, its bytes match its "
        "card); with several for the date, name one with --identity (pipeline status lists them).",
    )
    promote.add_argument("--run-date", type=_run_date, required=True, help="YYYY-MM-DD")
    promote.add_argument("--identity", help="published-<id>: which of the date's published models")
    rollback = commands.add_parser(
        "rollback",
        help="make the previous champion the champion again",
        description="Make the previous champion the champion again; the one rolled back becomes its previous.",
    )
    for command in (champion, promote, rollback):
        _add_roots(command, artifacts=False)
        command.add_argument("--json", action="store_true", help="print JSON")


def _champion(args: argparse.Namespace) -> int:
    from mlpipe import champion
    from mlpipe.exceptions import PipelineError
    from mlpipe.status import collect_status
    from mlpipe.storage import Store

    store = Store.on_this_machine()

    who = f"pipeline {args.command} ({os.environ.get('USER', 'someone')})"
    try:
        if args.command == "promote":
            runs = collect_status(
                args.publish_uri, args.publish_uri, first=args.run_date, last=args.run_date, store=store
            )["runs"]
            published = [p for run in runs for p in run["published"] if p["state"] == "present"]
            chosen = [p for p in published if args.identity in (None, p["identity"])]
            if len(chosen) != 1:
                listed = ", ".join(p["identity"] for p in published) or "none"
                print(
                    f"pipeline promote: {len(chosen)} published models match on {args.run_date} (there are: {listed}); "
                    "name one with --identity",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            result = champion.set_champion(args.publish_uri, chosen[0]["uri"], promoted_by=who, store=store)
            print(result.reason, file=sys.stderr)
        elif args.command == "rollback":
            print(champion.rollback(args.publish_uri, promoted_by=who, store=store).reason, file=sys.stderr)
        current = champion.read_champion(args.publish_uri, store=store)
        history = champion.champion_history(args.publish_uri, store=store)
    except PipelineError as exc:
        return _failed(args.command, exc)
    if args.json:
        print(json.dumps({"champion": current, "history": history}, indent=2))
        return 0
    if current is None:
        print(f"no champion yet under {args.publish_uri}")
        return 0
    accuracy = (current.get("metrics") or {}).get("cv_accuracy")
    shown = f"{accuracy:.4f}" if isinstance(accuracy, int | float) else "-"
    print(f"champion: {current['identity']} ({current['run_date']}, cv {shown}) {current['model_uri']}")
    print("history, newest first:")
    for entry in reversed(history):
        when, action, identity = entry["promoted_at"], entry["action"], entry["identity"]
        print(f"  {when}  {action:<8} {identity}  ({entry['run_date']})  by {entry['promoted_by']}")
    return 0


def _add_roots(command: argparse.ArgumentParser, *, artifacts: bool = True) -> None:
    """``--artifact-root`` (with ``artifacts``) and ``--publish-uri``: for the commands that read what runs made."""
    if artifacts:
        command.add_argument("--artifact-root", default=DEFAULT_ARTIFACTS, help="default: %(default)s")
    command.add_argument("--publish-uri", default=DEFAULT_PUBLISHED, help="default: %(default)s")


def _failed(command: str, exc: BaseException) -> int:
    """Report an expected failure of ``command`` on one line of stderr; the exit status for it."""
    print(f"pipeline {command}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return EXIT_FAILED


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
    _add_roots(status)
    status.add_argument("--json", action="store_true", help='print {"runs": [...]} as JSON')


def _status(args: argparse.Namespace) -> int:
    from mlpipe.exceptions import PipelineError
    from mlpipe.status import collect_status, format_status
    from mlpipe.storage import Store

    store = Store.on_this_machine()

    first, last = (args.run_date, args.run_date) if args.run_date else (args.first, args.last)
    try:
        status = collect_status(args.artifact_root, args.publish_uri, first=first, last=last, store=store)
    except PipelineError as exc:
        return _failed(args.command, exc)
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
    source.add_argument("--publish-uri", default=DEFAULT_PUBLISHED, help="where the champion is (default: %(default)s)")
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
    from mlpipe.storage import Store

    store = Store.on_this_machine()

    try:
        result = predict_file(
            args.input, model_uri=args.model, publish_uri=None if args.model else args.publish_uri, store=store
        )
    except (PipelineError, OSError) as exc:
        return _failed(args.command, exc)
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
    _add_roots(report)


def _report(args: argparse.Namespace) -> int:
    from mlpipe.exceptions import PipelineError
    from mlpipe.reporting_html import write_report
    from mlpipe.storage import Store

    store = Store.on_this_machine()

    try:
        summary = write_report(args.html, artifact_root=args.artifact_root, publish_uri=args.publish_uri, store=store)
    except (PipelineError, OSError) as exc:
        return _failed(args.command, exc)
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


def execution_input_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The execution input that the run options give (without ``source_url``, which may need a server first)."""
    execution_input: dict[str, Any] = {"artifact_root": args.artifact_root, "publish_uri": args.publish_uri}
    for key in (
        "run_date",
        "estimator",
        "hyperparameters",
        "cv_folds",
        "force",
        "max_source_bytes",
        "min_cv_accuracy",
        "max_regression",
    ):
        if getattr(args, key, None) is not None:
            execution_input[key] = getattr(args, key)
    dataset = dataset_from_args(args)
    if dataset is not None:
        execution_input["dataset"] = dataset
    return execution_input


def _uses_real_s3(args: argparse.Namespace) -> bool:
    return any(str(uri).startswith("s3://") for uri in (args.artifact_root, args.publish_uri))


def _run(args: argparse.Namespace) -> int:
    from pipeline_local.runner import LocalPipeline, RetryNotice, describe_event, local_aws, serve_sample

    real_s3 = _uses_real_s3(args)
    execution_input = execution_input_from_args(args)

    def show(event: dict[str, Any]) -> None:
        line = describe_event(event)
        if line:
            print(line, file=sys.stderr, flush=True)

    def show_retry(notice: RetryNotice) -> None:
        print(f"{' ' * 14}{notice.describe()}", file=sys.stderr, flush=True)

    with contextlib.ExitStack() as stack:
        execution_input["source_url"] = args.source_url or stack.enter_context(serve_sample())
        if not args.source_url:  # served on a new port each run: named so that its identity stays the same
            execution_input["source_id"] = SAMPLE_SOURCE_ID
        stack.enter_context(local_aws(real_s3=real_s3))
        pipeline = LocalPipeline(env={"TRAIN_ON": args.train_on}, retry_delay_scale=_retry_delay_scale())
        summary = pipeline.run(
            execution_input, on_event=None if args.json else show, on_retry=None if args.json else show_retry
        )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return 0 if summary["status"] == "SUCCEEDED" else EXIT_FAILED


def _backfill(args: argparse.Namespace) -> int:
    from mlpipe.backfill import expand_backfill
    from mlpipe.exceptions import InvalidRequestError
    from pipeline_local.runner import LocalBackfill, local_aws, serve_sample

    request: dict[str, Any] = {"from": args.from_date, "to": args.to_date, "input": execution_input_from_args(args)}
    if args.max_concurrency is not None:
        request["max_concurrency"] = args.max_concurrency
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


def _show(event: dict[str, Any]) -> None:
    from pipeline_local.runner import describe_event

    line = describe_event(event)
    if line:
        print(line, file=sys.stderr, flush=True)


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as text, like Luigi's execution summary."""
    lines = ["", f"===== Summary of run {summary.get('run_date')} ====="]
    for name, task in summary.get("tasks", {}).items():
        lines.append(f"  {name:<9} {task['state']:<8} {task.get('target') or ''}")
    gate = summary.get("gate")
    if isinstance(gate, dict) and not summary.get("error"):
        lines.append(f"  gate:     {gate.get('reason')}")
    champion = summary.get("champion")
    if isinstance(champion, dict):
        lines.append(f"  champion: {champion.get('reason')}")
    error = summary.get("error")
    if error:
        lines.append(f"  FAILED in {error.get('task')}: {error.get('type')}: {error.get('message')}")
    else:
        ran = [name for name, task in summary.get("tasks", {}).items() if task["state"] == "ran"]
        lines.append("  SUCCEEDED: " + (f"ran {', '.join(ran)}" if ran else "everything was already present"))
    return "\n".join(lines)


def format_backfill(summary: dict[str, Any]) -> str:
    """The backfill's summary as text: one line per date, then the totals."""
    from mlpipe.backfill import outcome

    runs = summary.get("runs", [])
    lines = ["", f"===== Summary of the backfill: {len(runs)} date(s) ====="]
    for run in runs:
        state = outcome(run)
        error = run.get("error")
        if error:
            note = f"{error.get('task')}: {error.get('type')}: {error.get('message')}"
        else:
            ran = [name for name, task in run.get("tasks", {}).items() if task["state"] == "ran"]
            note = f"ran {', '.join(ran)}" if ran else "everything was already present"
        lines.append(f"  {run.get('run_date')}  {state:<8} {note}")
    if summary.get("error"):
        error = summary["error"]
        lines.append(f"  the backfill failed: {error.get('type')}: {error.get('message')}")
    totals = summary.get("totals", {})
    lines.append(
        f"  {summary['status']}: ran {totals.get('ran', 0)}, present {totals.get('present', 0)}, "
        f"failed {totals.get('failed', 0)}"
    )
    return "\n".join(lines)


def _invoke(args: argparse.Namespace) -> int:
    from pipeline_local.lambdas import LambdaContext, error_payload, load_handler

    try:
        event = json.loads(args.event.read_text())
    except (OSError, ValueError) as exc:
        print(f"pipeline invoke: cannot read the event file {args.event}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    local_run: dict[str, str] = {}
    if not args.offline and os.environ.get("AWS_ENDPOINT_URL"):
        # Storage on a local S3-compatible server is a local run: the source may be on this machine too.
        local_run["MLPIPE_ALLOW_LOOPBACK_SOURCES"] = os.environ.get("MLPIPE_ALLOW_LOOPBACK_SOURCES", "true")
    with (
        temporary_environment(local_run),
        _offline(args.function, event) if args.offline else contextlib.nullcontext(event) as prepared,
    ):
        handler = load_handler(args.function)
        try:
            result = handler(prepared, LambdaContext(args.function))
        except Exception as exc:
            print(json.dumps(error_payload(exc) | {"stackTrace": None}, indent=2))
            return EXIT_FAILED
    print(json.dumps(result, indent=2))
    _explain_plan(result)
    return 0


def _explain_plan(result: Any) -> None:
    """After ``invoke plan``: each task's state in words on stderr (the JSON's ``pending`` means "will run")."""
    from pipeline_local.runner import describe_state

    tasks = result.get("tasks") if isinstance(result, dict) else None
    if isinstance(tasks, dict):
        for name, task in tasks.items():
            if isinstance(task, dict):
                print(f"  {name:<9} {describe_state(task.get('state'))}", file=sys.stderr)


@contextlib.contextmanager
def _offline(function: str, event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """S3 in moto with the event's buckets created, the sample as source, and the inputs the function needs."""
    from pipeline_local.lambdas import REPO_ROOT, LambdaContext, load_handler
    from pipeline_local.runner import LOCAL_ENV, local_aws, serve_sample

    with serve_sample() as sample_url, local_aws(), temporary_environment(LOCAL_ENV):
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
        # Make the function's inputs: the targets of the tasks before it, named in the event (a run object).
        run_date = event.get("run_date", "2026-01-01")
        model_uri = event.get("model_uri")
        dataset_uri = event.get("dataset_uri")
        published_uri = event.get("published_uri")
        if function in {"train", "upload", "promote"} and dataset_uri:
            print(f"(offline) making the input {dataset_uri}", file=sys.stderr)
            load_handler("download")(
                {"run_date": run_date, "source_url": sample_url, "dataset_uri": dataset_uri}, LambdaContext("download")
            )
        if function in {"upload", "promote"} and model_uri:
            print(f"(offline) making the input {model_uri}", file=sys.stderr)
            load_handler("train")(
                {"run_date": run_date, "dataset_uri": dataset_uri, "model_uri": model_uri}, LambdaContext("train")
            )
        if function == "promote" and published_uri:
            print(f"(offline) making the input {published_uri}", file=sys.stderr)
            load_handler("upload")(
                {"run_date": run_date, "model_uri": model_uri, "published_uri": published_uri}, LambdaContext("upload")
            )
        yield event


if __name__ == "__main__":
    sys.exit(main())
