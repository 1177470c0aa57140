"""The options that several ``pipeline`` commands share, with their types: each type checks one value when given.

What the types need from mlpipe (and ``--version`` from importlib.metadata) is imported when they run:
importing the mlpipe package loads all of its modules, which would nearly double ``pipeline --help``'s time.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

from pipeline_local.cli.common import DEFAULT_ARTIFACTS, DEFAULT_PUBLISHED


def add_version(parser: argparse.ArgumentParser) -> None:
    """``--version``."""
    parser.add_argument("--version", action=_Version, help="print the version and exit")


def add_verbose(command: argparse.ArgumentParser) -> None:
    """``--verbose``: the functions' logs as they are."""
    command.add_argument(
        "--verbose",
        action="store_true",
        help="the functions' JSON logs at INFO level, with a traceback for every failure "
        "(default: an expected failure is one line)",
    )


def add_roots(command: argparse.ArgumentParser, *, artifacts: bool = True) -> None:
    """``--artifact-root`` (with ``artifacts``) and ``--publish-uri``: for the commands that read what runs made."""
    if artifacts:
        command.add_argument("--artifact-root", default=DEFAULT_ARTIFACTS, help="default: %(default)s")
    command.add_argument("--publish-uri", default=DEFAULT_PUBLISHED, help="default: %(default)s")


def add_model(command: argparse.ArgumentParser, *, run: bool = False) -> None:
    """``--model NAME``: which named model (its own published location, champion and history)."""
    command.add_argument(
        "--model",
        type=_model_name,
        help="the model's name, [a-z0-9][a-z0-9-]{0,62} (default: iris)"
        if run
        else "the model's name (default: the only model under the publish location, else iris; with several, name one)",
    )


def add_run_date(command: argparse.ArgumentParser, **kwargs: Any) -> None:
    """``--run-date``, checked to be a date YYYY-MM-DD."""
    command.add_argument("--run-date", type=_run_date, **kwargs)


def add_run_arguments(parser: argparse.ArgumentParser, *, run_date: bool = True) -> None:
    """The options of one run (the execution input's fields), for ``run`` and, without ``--run-date``, ``backfill``."""
    parser.add_argument(
        "--source-url",
        help=(
            "the dataset: an http(s) URL, s3://bucket/key or a local path, with {run_date}, {yyyy}, {mm}, {dd} "
            "filled in; gzip and a zip of one file are read (default: the bundled Iris sample, served on 127.0.0.1)"
        ),
    )
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
    add_model(parser, run=True)
    if run_date:
        add_run_date(parser, help="YYYY-MM-DD (default: today, UTC)")
    parser.add_argument(
        "--estimator",
        help="svc (default), linear_svc, logistic_regression, random_forest, hist_gradient_boosting or auto "
        "(chosen by the row count); under --task regression their regressors, or svr, linear_svr, ridge",
    )
    parser.add_argument(
        "--hyperparameters", type=_json_object, help="the estimator's hyperparameters as JSON, e.g. '{\"C\": 2}'"
    )
    parser.add_argument("--cv-folds", type=int, help="folds of cross-validation (default 5)")
    force = parser.add_argument(
        "--force",
        help="run this task and every later one even though their outputs exist (new targets; nothing overwritten)",
    )
    force.choices = _TaskChoices()  # after add_argument, which would list them (to check a metavar)
    add_dataset_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print only the summary, as JSON, on stdout")
    parser.add_argument("--min-cv-accuracy", type=float, help="the gate: publish only models with CV accuracy >= this")
    parser.add_argument(
        "--max-regression", type=float, help="the gate: publish only models at most this below the champion's score"
    )
    parser.add_argument(
        "--task",
        choices=["auto", "classification", "regression"],
        help="what the model predicts (default auto: decided from the label; see docs/regression.md)",
    )
    parser.add_argument(
        "--target-transform", choices=["none", "log"], help="regression: log fits log1p of a positive target"
    )
    parser.add_argument(
        "--min-lift-over-baseline",
        type=float,
        help="the gate: the CV score must beat the trivial baseline (majority class / mean) by more than this "
        "(default 0)",
    )
    _add_contract_arguments(parser)
    parser.add_argument(
        "--train-on",
        choices=["lambda", "sagemaker"],
        default="lambda",
        help="the deployment's TrainOn: the train function (default), or a SageMaker training job, run here "
        "in-process with the container's contract (see docs/sagemaker.md)",
    )
    parser.add_argument(
        "--max-source-bytes",
        type=_max_source_bytes,
        metavar="N",
        help="refuse a source larger than N bytes (default 64 MiB = 67108864, at most 5 GiB = 5368709120)",
    )
    add_verbose(parser)


def _add_contract_arguments(parser: argparse.ArgumentParser) -> None:
    """The data contract's flags (see docs/contract.md)."""
    parser.add_argument(
        "--on-schema-change",
        choices=["fail", "accept"],
        help="data whose columns, kinds or labels differ from the champion's contract: fail (default), or accept "
        "(recorded in the card; the model is then not promoted automatically)",
    )
    parser.add_argument(
        "--max-drift",
        type=drift_limit,
        help="the gate: reject a model whose data drifted more than this on a feature (PSI or L-infinity; default off)",
    )


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """The dataset description's flags; together they make the execution input's ``dataset`` object."""
    group = parser.add_argument_group("the dataset (see docs/your-data.md)")
    group.add_argument("--dataset", type=_json_object, help="the whole description as JSON; the flags below win")
    group.add_argument("--header", choices=["auto", "true", "false"], help="is the first row a header (default auto)")
    group.add_argument("--label-column", type=_column, help="label column: a name or a 0-based index (default -1)")
    group.add_argument("--feature-columns", type=_column_list, help="columns to train on: A,B,... (default: all)")
    group.add_argument("--drop-columns", type=_column_list, help="columns not to train on: A,B,...")
    group.add_argument(
        "--categorical-columns",
        type=_column_list,
        help="columns that are categories even where they hold numbers: A,B,...",
    )
    group.add_argument("--delimiter", choices=[",", ";", "tab", "|"], help="field delimiter (default ',')")
    group.add_argument("--missing", choices=["reject", "impute"], help="empty or NA cells (default reject)")
    group.add_argument("--labels", type=_column_list, help="allow-list of label values: A,B,...")


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


class _TaskChoices:
    """``--force``'s choices, the step registry's TASKS, read only when argparse looks at them (a ``--force``
    given, the usage of ``run`` or ``backfill``), not every time the parser is made."""

    def __contains__(self, value: object) -> bool:
        return value in _tasks()

    def __iter__(self) -> Iterator[str]:
        return iter(_tasks())


def _tasks() -> tuple[str, ...]:
    from mlpipe.steps import TASKS

    return TASKS


# The types below keep their names: argparse shows a type's name when it fails with a ValueError
# ("invalid _column value: '+-5'").


def _run_date(text: str) -> str:
    from mlpipe.config import parse_run_date
    from mlpipe.exceptions import PipelineError

    try:
        return parse_run_date(text).isoformat()
    except PipelineError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _model_name(text: str) -> str:
    from mlpipe.exceptions import PipelineError
    from mlpipe.naming import check_model_name

    try:
        return check_model_name(text, "--model")
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


def drift_limit(text: str) -> float:
    """``--max-drift``: a finite number, 0 or more (PSI has no upper bound), checked when the arguments are read."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a drift limit: give a finite number, 0 or more (e.g. 0.25)")
    return value


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
