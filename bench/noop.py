"""A no-op run, every output present: ``pipeline run`` against the same pipeline in Luigi, both as a user runs them.

``pipeline run`` executes the real ASL (statemachine/pipeline.asl.json) on moto's Step Functions
interpreter with the handlers in-process; the reference is the seed's Luigi pipeline, three
``luigi.Task`` classes download -> train -> upload with ``LocalTarget`` outputs, built with
``luigi.build(..., local_scheduler=True)``, in one module that imports what its tasks use
(requests, pandas, scikit-learn's SVC, pickle) at the top, as the seed's does. The same module
with those imports left out is timed too, as the floor of Luigi itself. Each is a fresh
subprocess (interpreter start and imports included), timed from the outside, after one run made
every output present, the three taking turns. Prints the median and the spread of ``--runs``
runs of each; it checks nothing.

    python -m bench.noop --luigi-python .venv-bench/bin/python [--runs 9]

(``make bench-noop`` installs Luigi, requirements/bench.txt, into .venv-bench and runs this.)
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

RUN_DATE = "2026-01-01"

# The seed's pipeline, in Luigi: the same three tasks and the same completeness rule (an output exists).
SEED_IMPORTS = textwrap.dedent(
    """
    import pickle

    import pandas as pd
    import requests
    from sklearn.svm import SVC
    """
)
LUIGI_PIPELINE = textwrap.dedent(
    """
    import sys

    import luigi

    try:
        import seed_imports  # noqa: F401 - what the seed's module imports at the top
    except ImportError:
        pass


    class Download(luigi.Task):
        date = luigi.DateParameter()

        def output(self):
            return luigi.LocalTarget(f"artifacts/{self.date}/dataset.csv")

        def run(self):
            with self.output().open("w") as out:
                out.write("5.1,3.5,1.4,0.2,Iris-setosa\\n")


    class Train(luigi.Task):
        date = luigi.DateParameter()

        def requires(self):
            return Download(date=self.date)

        def output(self):
            return luigi.LocalTarget(f"artifacts/{self.date}/model.pkl")

        def run(self):
            with self.input().open() as data, self.output().open("w") as out:
                out.write(data.read())


    class Upload(luigi.Task):
        date = luigi.DateParameter()

        def requires(self):
            return Train(date=self.date)

        def output(self):
            return luigi.LocalTarget(f"published/{self.date}/model.pkl")

        def run(self):
            with self.input().open() as model, self.output().open("w") as out:
                out.write(model.read())


    if __name__ == "__main__":
        import datetime

        ok = luigi.build([Upload(date=datetime.date.fromisoformat(sys.argv[1]))], local_scheduler=True)
        sys.exit(0 if ok else 1)
    """
)


def time_commands(commands: dict[str, tuple[list[str], Path]], runs: int) -> dict[str, list[float]]:
    """Wall seconds of ``runs`` runs of each command (each must exit 0), after one untimed run of each.

    The commands take turns, round after round, so a load that comes and goes on the machine
    weighs on all of them alike.
    """
    for command, cwd in commands.values():
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)  # makes every output present
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (command, cwd) in commands.items():
            start = time.perf_counter()
            subprocess.run(command, cwd=cwd, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    return times


def describe(name: str, times: list[float]) -> str:
    """``name: median s (min, max, n runs)``."""
    return (
        f"{name:<34} median {statistics.median(times):6.3f} s   "
        f"(min {min(times):.3f}, max {max(times):.3f}, {len(times)} runs)"
    )


def main(argv: list[str] | None = None) -> int:
    """Time both no-op runs and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--luigi-python", required=True, help="a Python with Luigi (make bench-noop: .venv-bench)")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--pipeline",
        help="the command to time instead of this venv's `pipeline` (e.g. another checkout's), split like a shell",
    )
    args = parser.parse_args(argv)
    pipeline = shlex.split(args.pipeline) if args.pipeline else [str(Path(sys.executable).with_name("pipeline"))]
    luigi_python = str(Path(args.luigi_python).absolute())  # the runs happen in other directories
    with tempfile.TemporaryDirectory(prefix="bench-noop-") as tmp:
        ours_dir, bare_dir, luigi_dir = Path(tmp, "pipeline"), Path(tmp, "luigi-bare"), Path(tmp, "luigi")
        for directory in (ours_dir, bare_dir, luigi_dir):
            directory.mkdir()
        (bare_dir / "seed_pipeline.py").write_text(LUIGI_PIPELINE)
        (luigi_dir / "seed_pipeline.py").write_text(LUIGI_PIPELINE)
        (luigi_dir / "seed_imports.py").write_text(SEED_IMPORTS)
        luigi_command = [luigi_python, "seed_pipeline.py", RUN_DATE]
        times = time_commands(
            {
                "ours": ([*pipeline, "run", "--run-date", RUN_DATE], ours_dir),
                "luigi": (luigi_command, luigi_dir),
                "bare": (luigi_command, bare_dir),
            },
            args.runs,
        )
    print("no-op run, every output present (wall time of a fresh process):")
    print(describe("pipeline run (real ASL on moto)", times["ours"]))
    print(describe("Luigi, the seed's imports", times["luigi"]))
    print(describe("Luigi alone (no imports)", times["bare"]))
    ratio = statistics.median(times["ours"]) / statistics.median(times["luigi"])
    print(f"ratio pipeline / Luigi with the seed's imports: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
