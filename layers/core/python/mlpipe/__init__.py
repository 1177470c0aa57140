"""mlpipe: the domain package of the serverless training pipeline (download -> train -> publish).

Consumers use ``mlpipe.load_champion(publish_uri)`` (the current model to serve) or
``mlpipe.load_model(uri)``, which check a model against its card before unpickling it.

It knows nothing about Lambda events: the handlers in ``functions/`` parse the event into a ``Run``
and call one task below with the ``Store`` and ``Settings`` they made once. pandas and
scikit-learn are imported only inside ``mlpipe.training``'s functions (and the consumer's
loading), lazily, so the other functions start fast. The module map: docs/architecture.md.
"""

from mlpipe.config import Run, Settings, resolve_run
from mlpipe.description import DatasetDescription
from mlpipe.exceptions import PipelineError
from mlpipe.loading import load_champion, load_model
from mlpipe.report import build_report
from mlpipe.steps import STEPS, TASKS, Step, step
from mlpipe.storage import LocalTarget, S3Target, Store, Target
from mlpipe.tasks import TaskOutcome, download, plan, promote, train, upload
from mlpipe.version import __version__

__all__ = [
    "STEPS",
    "TASKS",
    "DatasetDescription",
    "LocalTarget",
    "PipelineError",
    "Run",
    "S3Target",
    "Settings",
    "Step",
    "Store",
    "Target",
    "TaskOutcome",
    "__version__",
    "build_report",
    "download",
    "load_champion",
    "load_model",
    "plan",
    "promote",
    "resolve_run",
    "step",
    "train",
    "upload",
]
