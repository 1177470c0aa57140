"""The ``pipeline`` command as a user runs it, for tests: a subprocess of this venv's console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PIPELINE = str(Path(sys.executable).with_name("pipeline"))


def pipeline(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``pipeline ARGS...`` in ``cwd``; its exit status, stdout and stderr (never raises on a failure)."""
    return subprocess.run(
        [PIPELINE, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_pipeline(*args: str, cwd: Path) -> dict[str, Any]:
    """``pipeline run --json ARGS...``, which must succeed; its summary."""
    result = pipeline("run", "--json", *args, cwd=cwd)
    assert result.returncode == 0, result.stderr + result.stdout
    summary: dict[str, Any] = json.loads(result.stdout)
    assert summary["status"] == "SUCCEEDED", summary
    return summary
