"""Logs and metrics with Powertools: JSON log lines that carry the execution id, CloudWatch metrics in EMF.

Every handler is wrapped by ``instrumented(task)``, which

- logs JSON to stderr with the Step Functions execution id as ``correlation_id`` (the plan gets
  it beside the execution's input and puts it in the run, which is every task's event and the
  report's ``run``), and routes the domain modules' ``logging`` through the same formatter;
- emits the cold-start metric and the task's numbers (dataset rows and bytes, training seconds,
  cross-validated accuracy) under the ``MLPipe`` namespace with a ``task`` dimension; invocations
  and errors are Lambda's own, free metrics;
- logs a failure with its error type before the exception goes on to Step Functions.

Locally ``POWERTOOLS_METRICS_DISABLED=true`` keeps EMF blobs off stdout, and the ``pipeline`` command
sets ``MLPIPE_CONSOLE_ERRORS=true`` (unless ``--verbose``): log records are then readable lines on
stderr, and an expected failure (a ``PipelineError``, named and explained by its message) is one
line without a traceback; unexpected errors keep theirs. In AWS the variable is unset: JSON as above.

Progress of long work (a record with a ``progress`` field, from the ``PROGRESS_LOGGERS``) is logged
at INFO: in AWS a JSON line at the functions' LogLevel (INFO by default), and on the local console,
where the level is WARNING, ``progress_on_console()`` lets those loggers' INFO lines through, each
one indented under the runner's state lines.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from mlpipe.exceptions import PipelineError

SERVICE = "mlpipe"
CONSOLE_ERRORS_ENV = "MLPIPE_CONSOLE_ERRORS"
NAMESPACE = "MLPipe"
CORRELATION_ID_PATH = "execution_id || run.execution_id"
# The loggers whose INFO lines are progress worth showing on the local console.
PROGRESS_LOGGERS = ("mlpipe.fetch", "mlpipe.training")


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time, so later redirections (tests, runners) apply."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def console_errors() -> bool:
    """True when log records should be readable lines (the local command), not JSON records."""
    return os.environ.get(CONSOLE_ERRORS_ENV, "").lower() == "true"


class ConsoleAwareFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON lines, or under ``MLPIPE_CONSOLE_ERRORS=true`` one readable line per record.

    Decided per record, so the variable may be set after this module was imported.
    """

    INDENT = " " * 14  # under the text of the local runner's progress lines ("HH:MM:SS.mmm  ")

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record`` as JSON, or as a console line (see the class)."""
        if not console_errors():
            return super().format(record)
        if getattr(record, "progress", None) is not None:
            return f"{self.INDENT}{record.getMessage()}"
        error = record.exc_info[1] if record.exc_info else None
        task = getattr(record, "task", None)
        if isinstance(error, PipelineError):
            return f"{self.INDENT}{task or 'task'} failed: {type(error).__name__}: {error}"
        line = f"{self.INDENT}{record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


# stderr: in Lambda both streams reach CloudWatch; locally stdout carries the run's summary.
logger = Logger(
    service=SERVICE,
    stream=_CurrentStderr(),  # type: ignore[arg-type]
    logger_formatter=ConsoleAwareFormatter(),
)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
copy_config_to_registered_loggers(source_logger=logger, include={"mlpipe"})
# The plan step has no numbers of its own; an empty flush is expected, not worth a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


@contextlib.contextmanager
def progress_on_console() -> Iterator[None]:
    """While the block runs, the PROGRESS_LOGGERS log at INFO whatever the level (the local command's WARNING)."""
    loggers = [logging.getLogger(name) for name in PROGRESS_LOGGERS]
    levels = [each.level for each in loggers]
    for each in loggers:
        each.setLevel(min(each.getEffectiveLevel(), logging.INFO))
    try:
        yield
    finally:
        for each, level in zip(loggers, levels, strict=True):
            each.setLevel(level)


Handler = Callable[[Any, Any], Any]
# The parts of a handler's result worth a log line (the report's summary is logged by record_run).
LOGGED_FIELDS = {
    "state",
    "target",
    "start_at",
    "rows",
    "bytes",
    "sha256",
    "training_seconds",
    "problem",
    "cv_accuracy",
    "cv_r2",
}

# A task result's numbers that become metrics: result key -> (metric name, unit).
RESULT_METRICS: dict[str, tuple[str, MetricUnit]] = {
    "rows": ("DatasetRows", MetricUnit.Count),
    "bytes": ("DatasetBytes", MetricUnit.Bytes),
    "training_seconds": ("TrainingSeconds", MetricUnit.Seconds),
    "cv_accuracy": ("CrossValidatedAccuracy", MetricUnit.NoUnit),
    "cv_r2": ("CrossValidatedR2", MetricUnit.NoUnit),
}


def instrumented(task: str) -> Callable[[Handler], Handler]:
    """Wrap a Lambda handler with correlated JSON logs, cold-start and task metrics."""

    def decorate(handler: Handler) -> Handler:
        @logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
        # Powertools' cold-start metric and single_metric() ignore POWERTOOLS_METRICS_DISABLED.
        @metrics.log_metrics(capture_cold_start_metric=not is_metrics_disabled())
        @functools.wraps(handler)
        def wrapper(event: Any, context: Any) -> Any:
            metrics.clear_metrics()  # when metrics are disabled nothing is flushed, so nothing was cleared either
            metrics.add_dimension(name="task", value=task)
            try:
                result = handler(event, context)
            except BaseException as exc:
                logger.exception("task failed", extra={"task": task, "error_type": type(exc).__name__})
                raise  # counted by Lambda's own Errors metric
            fields = result if isinstance(result, dict) else {}
            for key, (name, unit) in RESULT_METRICS.items():
                if isinstance(fields.get(key), int | float):
                    metrics.add_metric(name=name, unit=unit, value=fields[key])
            logger.info("task finished", extra={"task": task} | {k: v for k, v in fields.items() if k in LOGGED_FIELDS})
            return result

        instrumented_handler: Handler = wrapper
        return instrumented_handler

    return decorate


def record_run(summary: dict[str, Any]) -> None:
    """Metrics of a finished run: which tasks ran, were present, failed or did not run; and its status."""
    status = "RunsSucceeded" if summary.get("status") == "SUCCEEDED" else "RunsFailed"
    metrics.add_metric(name=status, unit=MetricUnit.Count, value=1)
    for task, entry in summary.get("tasks", {}).items():
        if is_metrics_disabled():
            break
        with single_metric(
            name="TaskOutcomes",
            unit=MetricUnit.Count,
            value=1,
            namespace=NAMESPACE,
            default_dimensions={"service": SERVICE},
        ) as metric:
            metric.add_dimension(name="task", value=task)
            metric.add_dimension(name="outcome", value=str(entry.get("state")))
    logger.info("run finished", extra={"summary": summary})
