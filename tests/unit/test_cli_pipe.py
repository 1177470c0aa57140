"""The ``pipeline`` command writing into a pipe whose reader went away (``pipeline status | head``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# A command that prints far more than a pipe holds (64 KiB), through the real entry point.
NOISY = """
import sys
from pipeline_local import cli
def noisy(args):
    for number in range(200_000):
        print("line", number)
    return 0
cli.command = lambda name: noisy
sys.exit(cli.main(["status"]))
"""


def test_a_reader_that_goes_away_ends_the_command_quietly_with_sigpipes_status() -> None:
    # Given: the command's stdout is a pipe whose reader takes one chunk and closes it
    path = os.pathsep.join([str(REPO / "layers" / "core" / "python"), str(REPO / "local"), str(REPO)])
    process = subprocess.Popen(
        [sys.executable, "-c", NOISY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert process.stdout is not None
    assert process.stderr is not None
    assert process.stdout.read(100).startswith(b"line 0")
    process.stdout.close()
    # Then: no traceback (not even the interpreter's at exit), and 141 as for a process stopped by SIGPIPE
    errors = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141
    assert "Traceback" not in errors, errors
    assert "BrokenPipeError" not in errors, errors
