"""Scale: `pipeline run` on Iris-shaped CSVs of 10^4 to 10^6 rows (10^7 with --big), beside the seed's Luigi pipeline.

Each row count gets one file (4 numeric features with one decimal, the Iris class names as the
label in the last column, no header: the seed's iris.data, grown), made once under ``--data-dir``
from the Iris class means and standard deviations with Gaussian noise, and served over HTTP on
127.0.0.1. Then, each in a fresh process and fresh directories:

- ``pipeline run --estimator E`` for each ``--estimators`` (default ``svc``, the default
  estimator, and ``auto``): the real ASL on moto with the handlers in-process, as a user runs it.
  Per-task seconds come from its progress lines; the estimator chosen and the held-out accuracy
  from the model card.
- the seed's pipeline in Luigi (``LUIGI_PIPELINE``: download with requests, ``SVC()`` fitted on
  the whole file with pandas, pickled, copied to a published directory), with ``--luigi-python``
  (``make bench-scale`` installs it into .venv-bench), stopped after ``--luigi-timeout`` seconds.

Peak memory is the largest sum of the resident set sizes of the process and all its descendants,
sampled every 50 ms from /proc (and at least the process's own ru_maxrss), as Lambda counts a
function's memory. Prints one table; it checks nothing.

    python -m bench.scale [--big] [--rows 10000,100000] [--estimators svc,auto] [--luigi-python PY]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from bench.cost import LAMBDA_GB_SECOND, LAMBDA_REQUEST, SFN_STANDARD_TRANSITION, billed_ms, gb_seconds
from bench.fit_time import iris_like
from bench.samtemplate import Template
from mlpipe.steps import TASKS
from pipeline_local.lambdas import FUNCTIONS, function_arn
from pipeline_local.runner import ASL_PATH, SUBSTITUTIONS, QuietHandler, serve_directory

REPO = Path(__file__).resolve().parents[1]
ROWS = (10_000, 100_000, 1_000_000)
BIG = 10_000_000
RUN_DATE = "2026-01-01"
SAMPLE_SECONDS = 0.05
CLASSES = ("Iris-setosa", "Iris-versicolor", "Iris-virginica")
# The table's seconds per function: the plan and the three tasks that make a target (promote and report are quick).
TIMED = ("plan", *TASKS)

# The seed's pipeline, in Luigi: download -> SVC with its defaults -> pickle -> publish, each task
# run only when its output is missing. The seed published to S3; this copies to a local directory,
# as `pipeline run` does by default.
LUIGI_PIPELINE = textwrap.dedent(
    """
    import pickle
    import shutil
    import sys

    import luigi
    import pandas as pd
    import requests
    from sklearn.svm import SVC


    class Download(luigi.Task):
        date = luigi.DateParameter()
        url = luigi.Parameter()

        def output(self):
            return luigi.LocalTarget(f"artifacts/{self.date}/dataset.csv", format=luigi.format.Nop)

        def run(self):
            response = requests.get(self.url, stream=True, timeout=30)
            response.raise_for_status()
            with self.output().open("w") as out:
                for chunk in response.iter_content(1024 * 1024):
                    out.write(chunk)


    class Train(luigi.Task):
        date = luigi.DateParameter()
        url = luigi.Parameter()

        def requires(self):
            return Download(date=self.date, url=self.url)

        def output(self):
            return luigi.LocalTarget(f"artifacts/{self.date}/model.pkl", format=luigi.format.Nop)

        def run(self):
            frame = pd.read_csv(self.input().path, header=None)
            model = SVC().fit(frame.iloc[:, :-1].to_numpy(), frame.iloc[:, -1].to_numpy())
            with self.output().open("w") as out:
                pickle.dump(model, out)


    class Upload(luigi.Task):
        date = luigi.DateParameter()
        url = luigi.Parameter()

        def requires(self):
            return Train(date=self.date, url=self.url)

        def output(self):
            return luigi.LocalTarget(f"published/{self.date}/model.pkl", format=luigi.format.Nop)

        def run(self):
            self.output().makedirs()
            shutil.copyfile(self.input().path, self.output().path)


    if __name__ == "__main__":
        import datetime

        date = datetime.date.fromisoformat(sys.argv[1])
        ok = luigi.build([Upload(date=date, url=sys.argv[2])], local_scheduler=True)
        sys.exit(0 if ok else 1)
    """
)


def make_csv(rows: int, directory: Path, seed: int = 0) -> Path:
    """The Iris-shaped CSV of ``rows`` rows under ``directory`` (made once: the same seed gives the same bytes).

    The rows are bench.fit_time's ``iris_like`` (the data its fit-time constants come from), with
    the Iris class names as labels.
    """
    path = directory / f"iris-{rows}.csv"
    if path.is_file():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    features, labels = iris_like(rows, seed)
    partial = path.with_suffix(".partial")
    with partial.open("w") as out:
        for start in range(0, rows, 100_000):
            block = zip(
                features[start : start + 100_000].tolist(), labels[start : start + 100_000].tolist(), strict=True
            )
            out.write("".join(f"{a:.1f},{b:.1f},{c:.1f},{d:.1f},{CLASSES[k]}\n" for (a, b, c, d), k in block))
    partial.rename(path)
    return path


def tree_rss_bytes(root: int) -> int:
    """The resident set sizes of ``root`` and its descendants, summed, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, []))
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match.group(1)) * 1024 if match else 0
    return total


@dataclass
class Measured:
    """One process's wall seconds, peak memory (bytes), exit code, and what it printed."""

    seconds: float
    peak_bytes: int
    returncode: int | None  # None: stopped at the timeout
    stdout: str = ""
    stderr: str = ""


def measure(command: list[str], cwd: Path, timeout: float | None = None) -> Measured:
    """Run ``command`` in ``cwd``, sampling its process tree's memory; stop it after ``timeout`` seconds."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err, text=True)
        peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, tree_rss_bytes(process.pid))
                stop.wait(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            status, usage = _wait(process, timeout)
        finally:
            stop.set()
            sampler.join()
        seconds = time.perf_counter() - started
        returncode = None if status is None else os.waitstatus_to_exitcode(status)
        if usage is not None:
            peak = max(peak, usage.ru_maxrss * 1024)
        out.seek(0)
        err.seek(0)
        return Measured(seconds, peak, returncode, out.read(), err.read())


def _wait(process: subprocess.Popen[str], timeout: float | None) -> tuple[int | None, Any]:
    """The wait status and resource usage of ``process``; (None, None) when it was killed at ``timeout``."""
    deadline = math.inf if timeout is None else time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
            return status, usage
        time.sleep(0.1)
    process.kill()
    _, status, _ = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return None, None


def states_entered(stderr: str) -> int:
    """The state transitions Step Functions bills: one per state entered (a ``start`` progress line)."""
    return sum(1 for line in stderr.splitlines() if (m := _STATE_LINE.match(line)) and m.group(4) == "start")


def cost_per_run(tasks: dict[str, float], transitions: int, architecture: str) -> float:
    """USD of one run in AWS: each task's seconds here times its function's MemorySize, and the transitions.

    Assumes a Lambda vCPU as fast as this machine's core and the template's default memory (the
    train function's 3538 MB are two vCPUs, as here); S3 requests (a dozen) are left out.
    """
    memory = function_memory()
    lambda_cost = sum(
        gb_seconds(billed_ms(seconds), memory[name]) * LAMBDA_GB_SECOND[architecture] + LAMBDA_REQUEST
        for name, seconds in tasks.items()
    )
    return lambda_cost + transitions * SFN_STANDARD_TRANSITION


_STATE_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d+)\s+(start|end)\s+(.+?)(?:\s\s\(.*)?$")


@cache
def state_functions() -> dict[str, str]:
    """Each Lambda task state of the real ASL and the function it invokes, as the local runner substitutes it."""
    text = ASL_PATH.read_text()
    for key, value in SUBSTITUTIONS.items():
        text = text.replace("${" + key + "}", value)
    arns = {function_arn(name): name for name in FUNCTIONS}
    states = json.loads(text)["States"]
    return {
        name: arns[state["Parameters"]["FunctionName"]]
        for name, state in states.items()
        if state.get("Parameters", {}).get("FunctionName") in arns
    }


@cache
def function_memory() -> dict[str, int]:
    """Each function's MemorySize in MB, from template.yaml with its parameters' defaults."""
    return {f.name: f.memory_mb for f in Template(REPO / "template.yaml").functions()}


def task_seconds(stdout: str) -> dict[str, float]:
    """Seconds per task, from ``pipeline run``'s progress lines (``HH:MM:SS.fff  start|end  <state>``)."""
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for line in stdout.splitlines():
        match = _STATE_LINE.match(line)
        if not match or match.group(5) not in state_functions():
            continue
        hours, minutes, secs, event, state = match.groups()
        at = int(hours) * 3600 + int(minutes) * 60 + float(secs)
        if event == "start":
            started[state] = at
        elif state in started:
            function = state_functions()[state]
            seconds[function] = seconds.get(function, 0.0) + (at - started[state]) % 86_400
    return seconds


@dataclass
class Row:
    """One line of the table."""

    rows: int
    csv_bytes: int
    what: str
    seconds: float | None
    peak_bytes: int
    tasks: dict[str, float] = field(default_factory=dict)
    chosen: str = ""
    accuracy: str = ""
    note: str = ""
    stopped_after: float | None = None
    cost: str = ""


def run_pipeline(url: str, rows: int, csv_bytes: int, estimator: str, pipeline: list[str], work: Path) -> Row:
    """One ``pipeline run`` of ``url`` with ``estimator``, in a fresh directory."""
    work.mkdir(parents=True)
    command = [*pipeline, "run", "--source-url", url, "--run-date", RUN_DATE, "--estimator", estimator]
    command += ["--max-source-bytes", str(max(csv_bytes * 2, 64 * 1024 * 1024))]
    result = measure(command, work)
    row = Row(rows, csv_bytes, f"pipeline run --estimator {estimator}", result.seconds, result.peak_bytes)
    row.tasks = task_seconds(result.stderr)  # the progress lines go to stderr, the summary to stdout
    transitions = states_entered(result.stderr)
    row.cost = " / ".join(f"${cost_per_run(row.tasks, transitions, arch):.4f}" for arch in ("x86_64", "arm64"))
    if result.returncode != 0:
        row.note = _last_error(result.stdout + result.stderr)
        return row
    cards = list(work.glob(".pipeline/artifacts/*/model-*/metrics.json"))
    if cards:
        card = json.loads(cards[0].read_text())
        row.chosen = card["estimator"]["name"]
        cv = card["cv_accuracy"]
        row.accuracy = f"{cv['mean']:.4f} ({'holdout' if 'holdout' in cv['method'] else str(cv['folds']) + '-fold'})"
    return row


def _last_error(text: str) -> str:
    """The failure's own line (``train failed: TrainingTooLargeError: ...``), shortened."""
    for line in reversed(text.splitlines()):
        if " failed: " in line and "Error: " in line:
            return line.strip()[:200]
    return text.strip().splitlines()[-1][:160] if text.strip() else "failed"


def run_luigi(url: str, rows: int, csv_bytes: int, luigi_python: str, work: Path, timeout: float) -> Row:
    """The seed's pipeline in Luigi on ``url``, in a fresh directory, stopped after ``timeout`` seconds."""
    work.mkdir(parents=True)
    (work / "seed_pipeline.py").write_text(LUIGI_PIPELINE)
    result = measure([luigi_python, "seed_pipeline.py", RUN_DATE, url], work, timeout)
    row = Row(rows, csv_bytes, "Luigi, the seed's pipeline", result.seconds, result.peak_bytes, chosen="svc")
    if result.returncode is None:
        row.seconds, row.stopped_after = None, timeout
        row.note = "stopped"
    elif result.returncode != 0:
        row.note = _last_error(result.stderr)
    return row


def render(rows: list[Row]) -> str:
    """The table, in Markdown."""
    lines = [
        f"| rows | CSV | run | {' | '.join(TIMED)} | total | peak memory | estimator | accuracy "
        "| AWS cost x86_64 / arm64 | note |",
        "|---:|---:|---|" + "---:|" * len(TIMED) + "---:|---:|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"{r.tasks[t]:.1f} s" if t in r.tasks else "" for t in TIMED]
        total = f"{r.seconds:.1f} s" if r.seconds is not None else f"> {r.stopped_after:.0f} s"
        lines.append(
            f"| {r.rows:,} | {r.csv_bytes / 1e6:.1f} MB | {r.what} | {' | '.join(cells)} | {total} | "
            f"{r.peak_bytes / 1e6:,.0f} MB | {r.chosen} | {r.accuracy} | {r.cost} | {r.note} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Make the files, run both pipelines on each, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", help=f"comma-separated row counts (default {','.join(map(str, ROWS))})")
    parser.add_argument("--big", action="store_true", help=f"add {BIG:,} rows (300 MB; about 10 minutes)")
    parser.add_argument("--estimators", default="svc,auto", help="pipeline run's --estimator values (default svc,auto)")
    parser.add_argument("--luigi-python", help="a Python with Luigi (make bench-scale: .venv-bench/bin/python)")
    parser.add_argument("--luigi-timeout", type=float, default=600.0, help="stop Luigi after this many seconds")
    parser.add_argument(
        "--luigi-max-rows", type=float, default=1e6, help="no Luigi run above this many rows (default 1e6)"
    )
    parser.add_argument("--data-dir", type=Path, default=REPO / ".aws-sam" / "bench" / "scale", help="the CSVs")
    parser.add_argument("--pipeline", help="the pipeline command (default: this venv's `pipeline`)")
    args = parser.parse_args(argv)
    counts = [int(float(n)) for n in args.rows.split(",")] if args.rows else list(ROWS)
    if args.big:
        counts.append(BIG)
    pipeline = args.pipeline.split() if args.pipeline else [str(Path(sys.executable).with_name("pipeline"))]
    luigi_python = str(Path(args.luigi_python).absolute()) if args.luigi_python else None  # runs elsewhere
    results: list[Row] = []
    args.data_dir.mkdir(parents=True, exist_ok=True)
    with (
        serve_directory(args.data_dir.absolute(), QuietHandler) as server,
        tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp,
    ):
        port = server.server_address[1]
        for rows in counts:
            path = make_csv(rows, args.data_dir)
            url = f"http://127.0.0.1:{port}/{path.name}"
            size = path.stat().st_size
            for estimator in args.estimators.split(","):
                results.append(run_pipeline(url, rows, size, estimator, pipeline, Path(tmp, f"{rows}-{estimator}")))
                print(render(results[-1:]).splitlines()[-1], flush=True)
            if luigi_python and rows <= args.luigi_max_rows:
                luigi = run_luigi(url, rows, size, luigi_python, Path(tmp, f"{rows}-luigi"), args.luigi_timeout)
                results.append(luigi)
                print(render([luigi]).splitlines()[-1], flush=True)
    print()
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
