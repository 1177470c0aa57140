"""``pipeline invoke``: one function's real handler in this process with an event file, like ``sam local invoke``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from mlpipe.observability import progress_on_console
from mlpipe.steps import STEPS, Step, step
from pipeline_local.cli.common import EXIT_FAILED, EXIT_USAGE
from pipeline_local.environment import temporary_environment
from pipeline_local.lambdas import REPO_ROOT, LambdaContext, error_payload, load_handler
from pipeline_local.runner import LOCAL_ENV, describe_state, local_aws, serve_sample

# The run date of an offline event that names none.
OFFLINE_RUN_DATE = "2026-01-01"


def invoke(args: argparse.Namespace) -> int:
    """Run the handler on the event file (``--offline``: in moto, its inputs made first); print its result."""
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
        progress_on_console(),  # a long download shows its progress on the console
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


def input_tasks(function: str) -> list[Step]:
    """The tasks whose targets ``function`` reads, and the tasks theirs come from, in the pipeline's order.

    Read from the step registry: a step's ``needs`` that an earlier task's ``output`` makes (promote needs
    ``published_uri``, made by upload, which needs ``model_uri``, ...).
    """
    wanted = set(step(function).needs)
    found: list[Step] = []
    for earlier in reversed(STEPS[: STEPS.index(step(function))]):
        if earlier.output and earlier.output.field in wanted:
            found.insert(0, earlier)
            wanted.update(earlier.needs)
    return found


def _explain_plan(result: Any) -> None:
    """After ``invoke plan``: each task's state in words on stderr (the JSON's ``pending`` means "will run")."""
    tasks = result.get("tasks") if isinstance(result, dict) else None
    if isinstance(tasks, dict):
        for name, task in tasks.items():
            if isinstance(task, dict):
                print(f"  {name:<9} {describe_state(task.get('state'))}", file=sys.stderr)


@contextlib.contextmanager
def _offline(function: str, event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """S3 in moto with the event's buckets created, the sample as source, and the inputs the function needs."""
    with serve_sample() as sample_url, local_aws(), temporary_environment(LOCAL_ENV | {"MLPIPE_OFFLINE": "true"}):
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
        # Make the function's inputs: the targets of the tasks before it, named in the event (a run object),
        # each task called with the fields its event needs.
        fields = {**event, "run_date": event.get("run_date", OFFLINE_RUN_DATE), "source_url": sample_url}
        for task in input_tasks(function):
            if task.output and event.get(task.output.field):
                print(f"(offline) making the input {event[task.output.field]}", file=sys.stderr)
                task_event = {name: fields.get(name) for name in task.needs}
                load_handler(task.function)(task_event, LambdaContext(task.function))
        yield event
