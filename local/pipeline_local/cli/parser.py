"""The ``pipeline`` command's parser: every subcommand and its options (the shared ones: ``options``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline_local.cli.common import DEFAULT_CONFIGS, DEFAULT_PUBLISHED
from pipeline_local.cli.options import (
    add_dataset_arguments,
    add_model,
    add_roots,
    add_run_arguments,
    add_run_date,
    add_verbose,
    add_version,
    drift_limit,
)
from pipeline_local.lambdas import FUNCTIONS

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


def build_parser() -> argparse.ArgumentParser:
    """The ``pipeline`` command's parser; ``command`` names the subcommand parsed."""
    parser = _Parser(prog="pipeline", description=DESCRIPTION)
    add_version(parser)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_SubcommandParser)

    run = commands.add_parser(
        "run", help="run the state machine on this machine (moto + in-process handlers)", description=RUN_DESCRIPTION
    )
    add_run_arguments(run)

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
    add_run_arguments(backfill, run_date=False)

    invoke = commands.add_parser(
        "invoke",
        help="invoke one function's handler with an event file, without Docker",
        description=INVOKE_DESCRIPTION,
    )
    add_verbose(invoke)
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
    _add_contract_command(commands)
    _add_models_command(commands)
    return parser


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
    add_roots(status)
    add_model(status)
    status.add_argument("--json", action="store_true", help='print {"runs": [...]} as JSON')


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
    add_run_date(promote, required=True, help="YYYY-MM-DD")
    promote.add_argument("--identity", help="published-<id>: which of the date's published models")
    rollback = commands.add_parser(
        "rollback",
        help="make the previous champion the champion again",
        description="Make the previous champion the champion again; the one rolled back becomes its previous.",
    )
    for command in (champion, promote, rollback):
        add_roots(command, artifacts=False)
        add_model(command)
        command.add_argument("--json", action="store_true", help="print JSON")


def _add_contract_command(commands: Any) -> None:
    """``pipeline contract show|diff``: the champion's data contract, and a file checked against it."""
    contract = commands.add_parser(
        "contract",
        help="the champion's data contract, and a file checked against it (schema and drift) without a run",
        description="show: print the data contract beside the champion (columns, kinds, ranges, deciles, categories, "
        "labels). diff: read a file as the download would and print each difference from the contract and each "
        "feature's drift; exit status 1 when the download would refuse it, or a feature drifts over --max-drift. "
        "See docs/contract.md.",
    )
    contract.add_argument("action", choices=["show", "diff"])
    add_roots(contract, artifacts=False)
    add_model(contract)
    contract.add_argument(
        "--source-url",
        help="diff: the file, as an http(s) URL, a path or an s3:// URI (gzip and a zip of one file are read), with "
        "{run_date}, {yyyy}, {mm}, {dd} filled in",
    )
    contract.add_argument("--max-drift", type=drift_limit, help="diff: fail when a feature drifts more than this")
    add_run_date(
        contract, help="diff: YYYY-MM-DD filling {run_date}, {yyyy}, {mm}, {dd} in --source-url (default: today, UTC)"
    )
    contract.add_argument("--json", action="store_true", help="print JSON")
    add_dataset_arguments(contract)


def _add_predict_command(commands: Any) -> None:
    """``pipeline predict``: the champion's (or a given model's) prediction for every row of a CSV."""
    predict = commands.add_parser(
        "predict",
        help="predict every row of a CSV with the champion (or --model-uri), read like the model's training data",
        description="Load the champion of --model under --publish-uri (or the model at --model-uri), checked "
        "against its card (sha256, scikit-learn version), read the CSV with the model's dataset description "
        "(delimiter, header, column names) and write one prediction per row, with class probabilities where the "
        "model has them. When the label column is in the file, it is not used to predict and the accuracy on it is "
        "reported.",
    )
    source = predict.add_mutually_exclusive_group()
    source.add_argument("--model-uri", help="a model.pkl: a path, file:// or s3:// URI (default: the champion)")
    source.add_argument("--publish-uri", default=DEFAULT_PUBLISHED, help="where the champion is (default: %(default)s)")
    add_model(predict)
    predict.add_argument("--input", required=True, type=Path, help="the CSV to predict")
    predict.add_argument("--output", type=Path, help="write the predictions' CSV here (default: stdout)")
    predict.add_argument(
        "--json",
        action="store_true",
        help='print {"model_uri", "predictions", "probabilities", "accuracy"} as JSON instead of a CSV',
    )


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
    add_roots(report)
    add_model(report)


def _add_models_command(commands: Any) -> None:
    """``pipeline models put|list|remove|migrate``: the models of a deployment (docs/models.md)."""
    models = commands.add_parser(
        "models",
        help="the models of a deployment: their configuration documents and schedules (put, list, remove, migrate)",
        description="Manage the models of a deployment without editing template.yaml: a configuration document per "
        "model (source, dataset description, estimator, hyperparameters, gate, schedule), checked offline with the "
        "plan's own checks; with --stack, each document's schedule is a schedule of the stack's group.",
    )
    actions = models.add_subparsers(dest="models_command", required=True, parser_class=_SubcommandParser)
    put = actions.add_parser("put", help="add or change a model: check its document, write it, schedule it")
    put.add_argument("name", help="the model's name, [a-z0-9][a-z0-9-]{0,62}")
    put.add_argument("--config", required=True, type=Path, help="the model's configuration document (JSON)")
    listed = actions.add_parser("list", help="the models with a document, and their schedules")
    listed.add_argument("--json", action="store_true", help="print JSON")
    remove = actions.add_parser("remove", help="remove a model's document and schedule (its published models stay)")
    remove.add_argument("name", help="the model's name")
    for action in (put, listed, remove):
        where = action.add_mutually_exclusive_group()
        where.add_argument(
            "--stack", help="a deployed stack: its ModelConfigsUri, schedule group, schedule role and dead-letter queue"
        )
        where.add_argument(
            "--configs-uri", default=DEFAULT_CONFIGS, help="where the documents are (default: %(default)s)"
        )
    migrate = actions.add_parser(
        "migrate",
        help="copy a publish location from before models had names to one model's location",
        description="Copy <publish uri>/champion.json, its history and every published model to <publish uri>/<model>/ "
        "(the manifests then name the copies); the old objects stay until you delete them.",
    )
    migrate.add_argument("--publish-uri", default=DEFAULT_PUBLISHED, help="default: %(default)s")
    migrate.add_argument("--model", default="iris", help="the model it becomes (default: %(default)s)")
