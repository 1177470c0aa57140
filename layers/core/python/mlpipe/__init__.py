"""mlpipe: the domain package of the serverless training pipeline (download -> train -> publish).

Consumers use ``mlpipe.load_champion(publish_uri)`` (the current model to serve) or
``mlpipe.load_model(uri)``, which check a model against its card before unpickling it.

It knows nothing about Lambda events: the handlers in ``functions/`` parse the event and call
the functions below with explicit arguments. pandas and scikit-learn are imported only by
``mlpipe.training``, lazily, so the other functions start fast.
"""

from mlpipe.champion import load_champion
from mlpipe.config import Run, Settings, resolve_run
from mlpipe.description import DatasetDescription
from mlpipe.exceptions import PipelineError
from mlpipe.loading import load_model
from mlpipe.report import build_report
from mlpipe.targets import LocalTarget, S3Target, Target, target_for
from mlpipe.tasks import TaskOutcome, download, plan, train, upload

__version__ = "0.2.0"

__all__ = [
    "DatasetDescription",
    "LocalTarget",
    "PipelineError",
    "Run",
    "S3Target",
    "Settings",
    "Target",
    "TaskOutcome",
    "build_report",
    "download",
    "load_champion",
    "load_model",
    "plan",
    "resolve_run",
    "target_for",
    "train",
    "upload",
]
