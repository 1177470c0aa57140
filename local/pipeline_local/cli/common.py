"""What the ``pipeline`` command's modules share: the default roots, the exit statuses, the sample's source id."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

DEFAULT_ROOT = Path(".pipeline")
DEFAULT_ARTIFACTS = str(DEFAULT_ROOT / "artifacts")
DEFAULT_PUBLISHED = str(DEFAULT_ROOT / "published")
DEFAULT_CONFIGS = str(DEFAULT_ROOT / "model-configs")  # the models' documents of local runs (pipeline models put)
# The bundled sample is served on a new port each run; it enters the dataset's identity under this
# name instead, with its own checksum, so that editing the file makes a new dataset.
SAMPLE_SOURCE_ID = (
    "sample:iris@"
    + hashlib.sha256((Path(__file__).resolve().parents[1] / "data" / "iris.data").read_bytes()).hexdigest()[:12]
)
EXIT_FAILED = 1
EXIT_USAGE = 2
# Set for the handlers when errors should be readable lines (mlpipe.observability), i.e. unless --verbose.
CONSOLE_ERRORS_ENV = "MLPIPE_CONSOLE_ERRORS"
# Scales the state machine's Retry intervals in a local run (0: retry at once); for tests and impatient people.
RETRY_DELAY_SCALE_ENV = "MLPIPE_RETRY_DELAY_SCALE"


def failed(command: str, exc: BaseException) -> int:
    """Report an expected failure of ``command`` on one line of stderr; the exit status for it."""
    print(f"pipeline {command}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return EXIT_FAILED
