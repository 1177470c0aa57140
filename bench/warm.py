"""Warm duration of each handler doing real work on the Iris sample, in this process (the dev venv).

The real state machine (statemachine/pipeline.asl.json, on moto's interpreter, see
``pipeline_local.runner``) runs the real handlers with a local-directory artifact root and the
bundled sample served on 127.0.0.1, so every function gets the event it gets in AWS. Each handler
call is timed on its own (the state machine's own overhead is not). The first execution warms
the handlers up (imports, caches) and is not timed; then each of ``--runs`` executions uses a
run date of its own, so download, train and upload really work every time. The "present" column
is the same handler called again on its event once its output exists.

The environment is template.yaml's (Globals and the functions' variables, intrinsics resolved
with the parameters' defaults), so Powertools logs and metrics are on as in AWS; what the
functions print is captured and measured (bytes of log lines, distinct EMF metrics).

It also counts Step Functions state transitions (StateEntered events in the execution history)
of a fresh run and of an all-present rerun, for bench.cost.

    python -m bench.warm [--runs 7] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_lambda_powertools.metrics.provider import cold_start

from bench.samtemplate import REPO, Template
from mlpipe.steps import FUNCTIONS
from pipeline_local.lambdas import LambdaContext
from pipeline_local.runner import LOCAL_ENV, LocalPipeline, local_aws, serve_sample, summary_from_execution

FIRST_DATE = dt.date(2000, 1, 1)


class Sink(io.StringIO):
    """Where the functions' stdout and stderr go while measured (CloudWatch Logs, in AWS). Thread-safe."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        with self.lock:
            return super().write(text)

    def size(self) -> int:
        with self.lock:
            return len(self.getvalue().encode())


@dataclass
class Timed:
    """A handler wrapped so that each call's duration, state and printed bytes are recorded."""

    name: str
    handler: Callable[[Any, Any], Any]
    sink: Sink
    durations: list[tuple[float, str]] = field(default_factory=list)  # (seconds, "ran" | "present" | "-")
    log_bytes: list[int] = field(default_factory=list)
    last_event: Any = None
    cold: bool = False  # mark every call as a cold start (Powertools' flag), as in a daily run

    def __call__(self, event: Any, context: Any) -> Any:
        if self.cold:
            _mark_cold_start()
        self.last_event = event
        before = self.sink.size()
        started = time.perf_counter()
        result = self.handler(event, context)
        seconds = time.perf_counter() - started
        self.log_bytes.append(self.sink.size() - before)
        state = result.get("state", "-") if isinstance(result, dict) else "-"
        self.durations.append((seconds, str(state)))
        return result


def _mark_cold_start() -> None:
    cold_start.is_cold_start = True


def template_environment(template: Template) -> dict[str, str]:
    """The variables the template gives its functions (Globals plus each function's own), merged."""
    env: dict[str, str] = {}
    for function in template.functions():
        for key, value in function.environment.items():
            if env.get(key, value) != value:
                print(f"note: {key} differs between functions; using {function.logical_id}'s", file=sys.stderr)
            env[key] = value
    return env


def emf_metrics(text: str) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """Distinct CloudWatch metrics (namespace, name, dimensions) in the EMF blobs of ``text``."""
    found = set()
    for line in text.splitlines():
        if '"_aws"' not in line or not line.startswith("{"):
            continue
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        for directive in blob.get("_aws", {}).get("CloudWatchMetrics", []):
            for dimensions in directive.get("Dimensions") or [[]]:
                dims = tuple(sorted((d, str(blob.get(d))) for d in dimensions))
                for metric in directive.get("Metrics", []):
                    found.add((str(directive.get("Namespace")), str(metric.get("Name")), dims))
    return found


def execute(pipeline: Any, execution_input: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One execution to its end; its summary and history. Polls slowly, so as not to disturb the timing."""
    arn = pipeline.start(execution_input)
    deadline = time.monotonic() + 600
    while True:
        status = pipeline.sfn.describe_execution(executionArn=arn)
        if status["status"] != "RUNNING":
            return summary_from_execution(status), pipeline.history(arn)
        if time.monotonic() > deadline:
            raise TimeoutError(f"execution {arn} still running after 600 s")
        time.sleep(0.1)


def transitions(history: list[dict[str, Any]]) -> int:
    """Billed state transitions of a Standard workflow: one per state entered."""
    return sum(1 for event in history if event["type"].endswith("StateEntered"))


def states(summary: dict[str, Any]) -> dict[str, str]:
    return {name: task["state"] for name, task in summary.get("tasks", {}).items()}


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def measure(runs: int, template: Template) -> dict[str, Any]:
    """Run the pipeline 1 + ``runs`` times on fresh dates and once more on the last; return the figures."""
    env = template_environment(template) | LOCAL_ENV | {"AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.pop("POWERTOOLS_METRICS_DISABLED", None)  # on, as in AWS (unless the template says otherwise)
    sink = Sink()
    with (
        tempfile.TemporaryDirectory(prefix="mlpipe-warm-") as tmp,
        environment(env),
        serve_sample() as sample_url,
        local_aws(),
    ):
        pipeline = LocalPipeline(env=env)
        timed = {name: Timed(name, handler, sink) for name, handler in pipeline.lambdas.handlers.items()}
        pipeline.lambdas.handlers.update(timed)

        def execution_input(index: int) -> dict[str, Any]:
            return {
                "run_date": (FIRST_DATE + dt.timedelta(days=index)).isoformat(),
                "source_url": sample_url,
                "artifact_root": str(Path(tmp) / "artifacts"),
                "publish_uri": str(Path(tmp) / "published"),
            }

        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), pipeline.lambdas.active():
            # Untimed warm-up, every call marked as a cold start: what a daily run prints.
            for t in timed.values():
                t.cold = True
            summary, fresh_history = execute(pipeline, execution_input(0))
            _expect(summary, "ran")
            cold_log = sink.getvalue()
            cold_log_bytes = {name: sum(t.log_bytes) for name, t in timed.items()}
            fresh_invocations = {name: len(t.durations) for name, t in timed.items() if t.durations}
            for t in timed.values():
                t.cold = False
                t.durations.clear()
                t.log_bytes.clear()
            for index in range(1, runs + 1):
                summary, _ = execute(pipeline, execution_input(index))
                _expect(summary, "ran")
            fresh = {name: [s for s, state in t.durations if state in {"ran", "-"}] for name, t in timed.items()}
            # An all-present rerun of the last date: only plan and report are invoked.
            for t in timed.values():
                t.durations.clear()
            summary, present_history = execute(pipeline, execution_input(runs))
            _expect(summary, "present")
            present_invocations = Counter({name: len(t.durations) for name, t in timed.items() if t.durations})
            # The present path of each function: called directly on its last event, output already there.
            for name, t in timed.items():
                while len(t.durations) < runs:
                    t(t.last_event, LambdaContext(name))
            present = {name: [s for s, state in t.durations if state in {"present", "-"}] for name, t in timed.items()}

    memory = {f.name: f.memory_mb for f in template.functions()}
    return {
        "runs": runs,
        "functions": {
            name: {
                "memory_mb": memory.get(name),
                "fresh_s": statistics.median(fresh[name]),
                "present_s": statistics.median(present[name]),
                "fresh_samples": fresh[name],
            }
            for name in FUNCTIONS
        },
        "fresh_run": {
            "transitions": transitions(fresh_history),
            "invocations": fresh_invocations,
            "log_bytes": cold_log_bytes,
            "emf_metrics": [[ns, name, dict(dims)] for ns, name, dims in sorted(emf_metrics(cold_log))],
        },
        "present_run": {"transitions": transitions(present_history), "invocations": dict(present_invocations)},
    }


def _expect(summary: dict[str, Any], state: str) -> None:
    if summary.get("status") != "SUCCEEDED" or set(states(summary).values()) != {state}:
        raise RuntimeError(f"expected every task {state!r}, the run says: {json.dumps(summary)}")


def print_table(figures: dict[str, Any]) -> None:
    print(
        f"Warm duration, in process (dev venv, x86_64 here), Iris sample on 127.0.0.1, local-directory "
        f"artifacts: median of {figures['runs']} calls, ms"
    )
    print(f"  {'function':<10} {'memory MB':>9} {'fresh (ran)':>12} {'present':>9}  log bytes per cold call")
    for name, f in figures["functions"].items():
        log = figures["fresh_run"]["log_bytes"].get(name, 0)
        print(f"  {name:<10} {f['memory_mb']:>9} {f['fresh_s'] * 1000:>12.1f} {f['present_s'] * 1000:>9.1f}  {log}")
    fresh, present = figures["fresh_run"], figures["present_run"]
    print(
        f"  state transitions: fresh run {fresh['transitions']}, all-present rerun {present['transitions']} "
        f"(functions invoked: {', '.join(present['invocations'])})"
    )
    print(f"  distinct EMF metrics in a run: {len(fresh['emf_metrics'])}")
    print(
        "  (plan and report: 'present' = the same event again; in AWS their S3 calls go over the network, "
        "here to a local directory)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="timed executions (median reported); default 7")
    parser.add_argument("--template", type=Path, default=REPO / "template.yaml")
    parser.add_argument("--json-out", type=Path, help="also write the figures here (for bench.cost)")
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be at least 2")
    figures = measure(args.runs, Template(args.template))
    print_table(figures)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
