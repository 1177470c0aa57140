"""Only train loads the ML stack: importing any other handler loads no pandas, scikit-learn, numpy or scipy.

Those four cost about a second of cold start and ship only in the train function's layer, so
another function that imported them would be slow to start in the best case and fail with
ModuleNotFoundError in AWS in the worst. Each import runs in a fresh interpreter of the dev venv
(where the four are installed, so an accidental import succeeds and shows up in sys.modules).
No build is needed: bench/coldstart.py does the same check on the built artifacts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mlpipe.steps import FUNCTIONS
from tests.conftest import REPO

HEAVY = ("pandas", "sklearn", "numpy", "scipy")
# argv: function directory, then modules to import after the handler; prints the top-level modules loaded.
LOADED = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
import app
for name in sys.argv[2:]:
    importlib.import_module(name)
print(json.dumps(sorted({m.partition(".")[0] for m in sys.modules})))
"""


def heavy_modules_loaded(function: str, *then_import: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-B", "-c", LOADED, str(REPO / "functions" / function), *then_import],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_METRICS_DISABLED": "true"},
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return sorted(set(loaded) & set(HEAVY))


@pytest.mark.parametrize("function", [name for name in FUNCTIONS if name != "train"])
def test_handler_import_loads_no_ml_library(function: str) -> None:
    assert heavy_modules_loaded(function) == []


def test_the_check_sees_the_ml_libraries_that_training_imports() -> None:
    # Given the train handler, when the modules its training imports lazily are loaded, then the check sees them
    assert heavy_modules_loaded("train", "mlpipe.training", "pandas", "sklearn.svm") == sorted(HEAVY)
