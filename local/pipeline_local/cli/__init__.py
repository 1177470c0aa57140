"""The ``pipeline`` command: run the whole state machine locally, or invoke one function with an event file.

pipeline run [--source-url URL] [--artifact-root URI] [--publish-uri URI] [--run-date YYYY-MM-DD]
             [--estimator NAME] [--hyperparameters JSON] [--cv-folds N] [--force TASK] [dataset flags]
             [--max-source-bytes N] [--json] [--verbose]
pipeline invoke FUNCTION EVENT_FILE [--offline] [--verbose]
pipeline status [--run-date D | --from D1 --to D2] [--json]
pipeline backfill --from YYYY-MM-DD --to YYYY-MM-DD [--max-concurrency N] [the run options but --run-date]
pipeline contract show|diff [--model NAME] [--publish-uri URI] [--source-url URL_OR_PATH] [dataset flags]
                            [--run-date YYYY-MM-DD] [--max-drift X] [--json]

pipeline models put NAME --config FILE | list | remove NAME [--stack STACK | --configs-uri URI]
pipeline models migrate --publish-uri URI [--model NAME]

``parser`` (with ``options``) makes the parser; the commands are in ``runs`` (run, backfill), ``models``
(status, champion, promote, rollback, predict, report), ``contract`` and ``invoke``. A command's module is imported
when it runs (``COMMANDS``): they import mlpipe and the runner, which ``pipeline --help`` never needs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import cast

from pipeline_local.cli.common import CONSOLE_ERRORS_ENV, SAMPLE_SOURCE_ID
from pipeline_local.cli.parser import build_parser
from pipeline_local.environment import temporary_environment

__all__ = ["COMMANDS", "SAMPLE_SOURCE_ID", "main"]

Command = Callable[[argparse.Namespace], int]
# Each subcommand's function, as "module:function" in this package.
COMMANDS = {
    "run": "runs:run",
    "backfill": "runs:backfill",
    "invoke": "invoke:invoke",
    "status": "models:status",
    "champion": "models:champion",
    "promote": "models:champion",
    "rollback": "models:champion",
    "predict": "models:predict",
    "report": "models:report",
    "contract": "contract:contract",
    "models": "registry:models",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pipeline`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    # Powertools: no EMF metric blobs on stdout (it carries the summary), and only warnings in the logs.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    verbose = getattr(args, "verbose", False)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO" if verbose else "WARNING")
    # moto's interpreter logs a failed execution with a traceback; the summary already says it better.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = {} if verbose else {CONSOLE_ERRORS_ENV: os.environ.get(CONSOLE_ERRORS_ENV, "true")}
    with temporary_environment(console):  # for this command only (main is also called in-process)
        try:
            status = command(args.command)(args)
            sys.stdout.flush()  # a reader that went away shows here, not as a traceback at exit
        except BrokenPipeError:
            return reader_gone()
        return status


def reader_gone() -> int:
    """The reader of stdout went away (``pipeline status | head``): what it read is all it wanted. Point stdout at
    /dev/null so the interpreter's last flush does not fail too, and end as a process stopped by SIGPIPE would."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 128 + 13  # 141: SIGPIPE's exit status in a shell


def command(name: str) -> Command:
    """The function of subcommand ``name``, its module imported now."""
    module, function = COMMANDS[name].split(":")
    return cast(Command, getattr(importlib.import_module(f"{__name__}.{module}"), function))
