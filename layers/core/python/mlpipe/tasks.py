"""The pipeline's tasks, each idempotent: check the output first, do the work only when it is missing.

Handlers call these with explicit arguments and return ``TaskOutcome.as_dict()``, which is what
the state machine records for the summary: ``{"state": "ran" | "present", "target": uri, ...}``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from mlpipe.artifacts import model_complete, read_metrics
from mlpipe.config import Run, Settings, resolve_run, sibling_uri
from mlpipe.dataset import DatasetStats
from mlpipe.description import DatasetDescription
from mlpipe.exceptions import MissingInputError, StorageError, TargetExistsError
from mlpipe.fetch import FetchPolicy, fetch_dataset
from mlpipe.gate import gate_for
from mlpipe.lineage import LINEAGE_FILE, lineage_record, write_lineage
from mlpipe.planning import plan_run
from mlpipe.targets import Target, target_for

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskOutcome:
    """What a task did ("ran" or "present"), to which target, with a few numbers for logs and metrics."""

    state: Literal["ran", "present"]
    target: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The handler's return value."""
        return {"state": self.state, "target": self.target, **self.details}


def plan(
    execution_input: Any, settings: Settings, now: dt.datetime | None = None, *, execution_id: str | None = None
) -> dict[str, Any]:
    """Resolve the execution's input into a run and decide, top-down, which tasks must run.

    When the run trains on SageMaker and training will run, the plan also stages the training code
    (mlpipe.sagemaker.stage_source, once per version of the code) and puts its URI in the run.
    """
    run: Run = resolve_run(execution_input, settings, now, execution_id=execution_id)
    planned = plan_run(run, allow_local=settings.allow_local_storage)
    if run.train_on == "sagemaker" and run.training_output_uri and planned["start_at"] in {"download", "train"}:
        from mlpipe.sagemaker import stage_source

        root = run.training_output_uri.rsplit("/", 1)[0]  # <sagemaker root>/output: the code goes to <root>/code
        planned["run"]["code_uri"] = stage_source(root, allow_local=settings.allow_local_storage)
    return planned


def download(
    source_url: str,
    dataset_uri: str,
    *,
    max_source_bytes: int,
    cv_folds: int,
    description: DatasetDescription,
    settings: Settings,
    identity: dict[str, Any] | None = None,
    execution_id: str | None = None,
) -> TaskOutcome:
    """Fetch ``source_url`` into ``dataset_uri`` unless the dataset is already there.

    The body is checked against ``description`` while it streams; nothing is written unless it
    passes. Then ``lineage.json`` beside it records ``identity`` (from the plan) and the source.
    """
    target = target_for(dataset_uri, allow_local=settings.allow_local_storage)
    if target.exists():
        return TaskOutcome("present", target.uri)
    policy = FetchPolicy(
        max_bytes=max_source_bytes,
        connect_timeout=settings.source_connect_timeout,
        read_timeout=settings.source_read_timeout,
        attempts=settings.source_attempts,
        backoff_seconds=settings.source_backoff_seconds,
        allow_loopback=settings.allow_loopback_sources,
        min_class_rows=cv_folds,
    )
    try:
        stats = fetch_dataset(source_url, target, policy, description=description)
    except TargetExistsError:
        LOG.info("another execution wrote %s first", target.uri)
        return TaskOutcome("present", target.uri)
    record = lineage_record(
        identity,
        execution_id=execution_id,
        input_targets=[{"uri": source_url, "sha256": stats.sha256}],
        output={
            "uri": target.uri,
            "sha256": stats.sha256,
            "bytes": stats.bytes,
            "rows": stats.rows,
            "checked": {"description": description.to_dict(), "stats": stats.to_dict()},
        },
    )
    write_lineage(target_for(sibling_uri(target.uri, LINEAGE_FILE), allow_local=settings.allow_local_storage), record)
    return TaskOutcome("ran", target.uri, {"rows": stats.rows, "bytes": stats.bytes, "sha256": stats.sha256})


def train(
    dataset_uri: str,
    model_uri: str,
    *,
    estimator: str,
    hyperparameters: dict[str, Any],
    cv_folds: int,
    description: DatasetDescription,
    settings: Settings,
    identity: dict[str, Any] | None = None,
    execution_id: str | None = None,
    publish_root: str | None = None,
    min_cv_accuracy: float | None = None,
    max_regression: float | None = None,
    time_left: Callable[[], float] | None = None,
    trained_elsewhere: bool = False,
) -> TaskOutcome:
    """Train on ``dataset_uri`` and write the model (with its card) unless both are already there.

    With ``trained_elsewhere`` (the run trains on SageMaker, and this call follows the job) it only
    reads the model's card for the gate: a missing model is a MissingInputError, never a training here.

    ``time_left`` gives the seconds the function has left (the Lambda context's remaining time):
    a training estimated to take longer fails at once with TrainingTooLargeError (mlpipe.scaling).

    The card's ``lineage`` section records ``identity`` (from the plan) and the dataset's URI and
    sha256. Either way the outcome carries ``gate`` (mlpipe.gate): the model's CV accuracy against
    the thresholds and the champion under ``publish_root``, for the state machine's gate.
    """
    from mlpipe.training import train_model  # pandas and scikit-learn load only when training really happens

    local = settings.allow_local_storage
    model = target_for(model_uri, allow_local=local)

    def gate(card: dict[str, Any]) -> dict[str, Any]:
        return gate_for(card, model.uri, publish_root, min_cv_accuracy, max_regression, allow_local=local)

    if model_complete(model, allow_local=local):
        return TaskOutcome("present", model.uri, {"gate": gate(read_metrics(model, allow_local=local))})
    if trained_elsewhere:
        raise MissingInputError(
            f"the model {model.uri} (with its metrics.json) is missing after the SageMaker training job; read the "
            "job's log in /aws/sagemaker/TrainingJobs and rerun"
        )
    dataset = _input(dataset_uri, "dataset", made_by="download", allow_local=local)
    result = train_model(
        dataset,
        model,
        estimator=estimator,
        hyperparameters=hyperparameters,
        cv_folds=cv_folds,
        description=description,
        allow_local=local,
        lineage=lineage_record(identity, execution_id=execution_id, input_targets=[]),
        time_left=time_left,
        known=known_stats(dataset, description, allow_local=local),
    )
    details = {
        "training_seconds": round(result.seconds, 4),
        "rows": result.metrics["rows"],
        "cv_accuracy": result.metrics["cv_accuracy"]["mean"],
        "sha256": result.metrics["model_sha256"],
        "gate": gate(result.metrics),
    }
    return TaskOutcome("ran" if result.wrote else "present", model.uri, details)


def promote(
    published_uri: str,
    run_date: str,
    *,
    publish_root: str,
    execution_id: str | None,
    settings: Settings,
    max_regression: float | None = None,
) -> dict[str, Any]:
    """Make the published model the champion when its run date is the newest so far; announce it.

    Announcing is a ``Model promoted`` event (source ``mlpipe``, detail: the manifest) on
    ``settings.event_bus``, when one is set.
    """
    from mlpipe.champion import promote as promote_champion

    result = promote_champion(
        publish_root,
        published_uri,
        run_date,
        promoted_by=execution_id or "pipeline",
        max_regression=max_regression,
        allow_local=settings.allow_local_storage,
    )
    outcome = result.as_dict(publish_root) | {"event": None}
    if result.promoted and settings.event_bus and result.champion is not None:
        outcome["event"] = announce(result.champion, settings.event_bus)
    return outcome


def announce(manifest: dict[str, Any], bus: str) -> str:
    """Put the ``Model promoted`` event on ``bus``; return "sent" or why not (the promotion stands either way)."""
    import boto3

    try:
        response = boto3.client("events").put_events(
            Entries=[
                {
                    "Source": "mlpipe",
                    "DetailType": "Model promoted",
                    "Detail": json.dumps(manifest),
                    "EventBusName": bus,
                }
            ]
        )
    except Exception as exc:
        LOG.error("the Model promoted event was not sent: %s", exc)
        return f"not sent: {exc}"
    if response.get("FailedEntryCount"):
        reason = response["Entries"][0].get("ErrorMessage", "unknown")
        LOG.error("the Model promoted event was not sent: %s", reason)
        return f"not sent: {reason}"
    return "sent"


def upload(
    model_uri: str,
    published_uri: str,
    *,
    settings: Settings,
    identity: dict[str, Any] | None = None,
    execution_id: str | None = None,
) -> TaskOutcome:
    """Publish ``model_uri`` to ``published_uri`` unless it is already published.

    The published card's ``publication`` section records ``identity`` and the model's URI and sha256.
    """
    from mlpipe.publishing import publish_model

    local = settings.allow_local_storage
    published = target_for(published_uri, allow_local=local)
    if model_complete(published, allow_local=local):
        return TaskOutcome("present", published.uri)
    model = _input(model_uri, "model", made_by="train", allow_local=local)
    record = lineage_record(identity, execution_id=execution_id, input_targets=[])
    result = publish_model(model, published, allow_local=local, publication=record)
    return TaskOutcome("ran" if result.wrote else "present", published.uri, {"sha256": result.sha256})


def known_stats(dataset: Target, description: DatasetDescription, *, allow_local: bool) -> DatasetStats | None:
    """What the download's check found in ``dataset``, from its lineage.json, if it checked it as ``description``.

    None when there is no such record (a dataset from before the record, or from elsewhere), it
    cannot be read, or the description differs: then training validates the file itself.
    """
    lineage = target_for(sibling_uri(dataset.uri, LINEAGE_FILE), allow_local=allow_local)
    try:
        if not lineage.exists():
            return None
        checked = json.loads(lineage.read_bytes())["output"]["checked"]
        if checked["description"] != description.to_dict():
            return None
        return DatasetStats.from_dict(checked["stats"])
    except (StorageError, ValueError, KeyError, TypeError) as exc:
        LOG.warning("cannot use %s (%s): training validates the dataset itself", lineage.uri, exc)
        return None


def _input(uri: str, what: str, *, made_by: str, allow_local: bool) -> Target:
    """A task's input target, which must exist: MissingInputError naming the task that makes it."""
    target = target_for(uri, allow_local=allow_local)
    if not target.exists():
        raise MissingInputError(
            f"the {what} {target.uri} does not exist; run the {made_by} task first (a new execution for this run "
            "date does)"
        )
    return target
