"""The pipeline's tasks, each idempotent: check the output first, do the work only when it is missing.

Each takes the run (``mlpipe.config.Run``, parsed once by the handler), the Store and the Settings,
and returns ``TaskOutcome.as_dict()`` (or, for promote, the promotion), which is what the state
machine records for the summary: ``{"state": "ran" | "present", "target": uri, ...}``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from mlpipe.artifacts import check_not_replaced, model_complete, read_metrics
from mlpipe.champion import promote as promote_champion
from mlpipe.champion import read_champion
from mlpipe.config import Run, Settings, check_max_source_bytes, resolve_run
from mlpipe.contract import DataWatch, card_sections, contract_for, contract_uri, read_profile, write_profile
from mlpipe.dataset import validate_dataset
from mlpipe.exceptions import (
    InvalidRequestError,
    MissingInputError,
    SourceChangedError,
    SourceNotReadyError,
    TargetExistsError,
    UploadIgnored,
)
from mlpipe.gate import card_score
from mlpipe.lineage import LINEAGE_FILE, known_stats, lineage_record, write_lineage
from mlpipe.modelconfig import with_model_config
from mlpipe.planning import model_gate, plan_run
from mlpipe.publishing import publish_model
from mlpipe.redaction import redact_url
from mlpipe.sagemaker import stage_source
from mlpipe.sources import HTTP, read_source, source_version
from mlpipe.steps import made_by
from mlpipe.storage import Store, Target
from mlpipe.training import train_model

LOG = logging.getLogger(__name__)
# What a download leaves of the function's remaining time to fail cleanly: abort the upload, return its error.
DOWNLOAD_CLEANUP_SECONDS = 10.0
# How long the state machine waits between two looks at a source that is not there yet (at most).
SOURCE_POLL_SECONDS = 60
# How many times in a row the plan names a new version after the source changed during the download.
MAX_SOURCE_REPLANS = 3


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
    execution_input: Any,
    settings: Settings,
    now: dt.datetime | None = None,
    *,
    store: Store,
    execution_id: str | None = None,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Resolve the execution's input (over its model's configuration document, ``mlpipe.modelconfig``) into a run
    and decide, top-down, which tasks must run.

    When the run trains on SageMaker and training will run, the plan also stages the training code
    (mlpipe.sagemaker.stage_source, once per version of the code) and puts its URI in the run.

    ``source`` is the state machine's count of the plan's loops (``{"replans", "waited"}``): a source
    that is not there yet is waited for (``start_at`` "wait", ``source.wait_seconds``) until
    ``settings.source_wait_seconds`` are used up, then SourceNotReadyError; after MAX_SOURCE_REPLANS
    changes of the source during its download in a row, SourceChangedError. An upload (``trigger``
    "upload") of an object the deployment's SourceUrl does not name is ignored: ``start_at`` "ignore".
    """
    replans, waited = _loops(source)
    if replans > MAX_SOURCE_REPLANS:
        raise SourceChangedError(
            f"the source changed during each of the last {replans} downloads (it is being rewritten while it is "
            "read); upload it in one piece (S3 PutObject or a rename) and run again"
        )
    execution_input = with_model_config(execution_input, settings, store=store)
    policy = settings.fetch_policy(check_max_source_bytes(_field(execution_input, "max_source_bytes", settings)))

    def versions(url: str, kind: str, named: bool) -> dict[str, Any] | None:
        # An http(s) source the user named (source_id) is not asked for its version, unless the deployment waits for
        # sources (the HEAD then finds one that is not there yet); `pipeline invoke --offline` asks no server.
        if kind == HTTP and (settings.offline or (named and not settings.source_wait_seconds)):
            return None
        return source_version(url, store=store, policy=policy)

    loops = {"replans": replans, "waited": waited, "wait_seconds": 0}
    try:
        run = resolve_run(execution_input, settings, now, execution_id=execution_id, store=store, versions=versions)
    except UploadIgnored as exc:  # an upload the deployment's SourceUrl does not name: logged, not a failure
        LOG.warning("ignored: %s", exc)
        return {"run": None, "tasks": {}, "start_at": "ignore", "source": loops | {"ignored": str(exc)}}
    except SourceNotReadyError as exc:
        left = settings.source_wait_seconds - waited
        if left <= 0:
            if settings.source_wait_seconds:
                raise SourceNotReadyError(f"{exc} (waited {waited} s, the deployment's SourceWaitSeconds)") from exc
            raise
        pause = min(left, SOURCE_POLL_SECONDS)
        LOG.info("the source is not there yet; looking again in %d s: %s", pause, exc)
        return {
            "run": None,
            "tasks": {},
            "start_at": "wait",
            "source": loops | {"waited": waited + pause, "wait_seconds": pause},
        }
    planned = plan_run(run, store=store)
    if run.train_on == "sagemaker" and run.training_output_uri and planned["start_at"] in {"download", "train"}:
        root = run.training_output_uri.rsplit("/", 1)[0]  # <sagemaker root>/output: the code goes to <root>/code
        planned["run"]["code_uri"] = stage_source(root, store=store)
    return planned | {"source": loops}


def _loops(source: Any) -> tuple[int, int]:
    """``(replans, waited)`` from the state machine's ``source`` (absent: a first plan)."""
    if source is None:
        return 0, 0
    if not isinstance(source, dict):
        raise InvalidRequestError(f"source must be an object (the state machine's), got {source!r}")
    values = source.get("replans", 0), source.get("waited", 0)
    if any(isinstance(value, bool) or not isinstance(value, int) or value < 0 for value in values):
        raise InvalidRequestError(f"source's replans and waited must be counts, got {source!r}")
    return values


def _field(execution_input: Any, name: str, settings: Settings) -> Any:
    """A field of the execution input, or the setting of that name (the input is checked by resolve_run)."""
    given = execution_input.get(name) if isinstance(execution_input, dict) else None
    return getattr(settings, name) if given is None else given


def download(
    run: Run, *, store: Store, settings: Settings, time_left: Callable[[], float] | None = None
) -> TaskOutcome:
    """Fetch the run's source into its dataset target unless the dataset is already there.

    The body is checked against the run's dataset description while it streams; nothing is written
    unless it passes. Then ``lineage.json`` beside it records the plan's identity and the source
    (without its secrets: ``mlpipe.redaction``).

    ``time_left`` gives the seconds the function has left (the Lambda context's remaining time): the
    download must end ``DOWNLOAD_CLEANUP_SECONDS`` before, or fails with DownloadTimeoutError.
    """
    target = store.target(run.dataset_uri)
    if target.exists():
        return TaskOutcome("present", target.uri)
    source_url = run.fetch_url(settings)
    policy = settings.fetch_policy(
        run.max_source_bytes,
        min_class_rows=run.cv_folds,
        task=run.task,
        target_transform=run.target_transform,
        time_budget=None if time_left is None else time_left() - DOWNLOAD_CLEANUP_SECONDS,
    )
    description = run.description
    watch = contract_watch(run, redact_url(source_url), store=store)
    try:
        stats = read_source(
            source_url,
            target,
            store=store,
            policy=policy,
            description=description,
            version=run.source_version,
            watch=watch,
        )
    except TargetExistsError:
        LOG.info("another execution wrote %s first", target.uri)
        return TaskOutcome("present", target.uri)
    write_profile(target, watch.result())
    record = lineage_record(
        run.identity("download"),
        execution_id=run.execution_id,
        input_targets=[{"uri": redact_url(source_url), "sha256": stats.sha256, "version": run.source_version}],
        output={
            "uri": target.uri,
            "sha256": stats.sha256,
            "bytes": stats.bytes,
            "rows": stats.rows,
            "checked": {"description": description.to_dict(), "stats": stats.to_dict()},
        },
    )
    write_lineage(target.sibling(LINEAGE_FILE), record)
    return TaskOutcome("ran", target.uri, {"rows": stats.rows, "bytes": stats.bytes, "sha256": stats.sha256})


def contract_watch(run: Run, uri: str, *, store: Store) -> DataWatch:
    """The download's sketch of the data and its check against the champion's contract (``mlpipe.contract``)."""
    contract, why = None, "no publish location"
    if run.publish_root:
        contract, why = contract_for(run.publish_root, read_champion(run.publish_root, store=store), store=store)
    LOG.info("data contract: %s", why)
    where = contract_uri(run.publish_root) if run.publish_root else None
    return DataWatch(uri, run.description.na_values, contract, where, run.on_schema_change)


def data_sections(dataset: Target, run: Run) -> dict[str, Any]:
    """The card's sections about the data (``mlpipe.contract.card_sections``), from the dataset's profile file;
    for a dataset downloaded before profiles were kept, its profile is made here (no contract check)."""
    found = read_profile(dataset)
    if found is not None:
        return card_sections(found)
    watch = DataWatch(dataset.uri, run.description.na_values)
    with dataset.open_read() as handle:
        validate_dataset(iter(lambda: handle.read(1024 * 1024), b""), dataset.uri, run.description, watch=watch)
    return card_sections(watch.result())


def train(run: Run, *, store: Store, time_left: Callable[[], float] | None = None) -> TaskOutcome:
    """Train on the run's dataset and write the model (with its card) unless both are already there.

    When the run trains on SageMaker (this call follows the job) it only reads the model's card for
    the gate: a missing model is a MissingInputError, never a training here.

    ``time_left`` gives the seconds the function has left (the Lambda context's remaining time):
    a training estimated to take longer fails at once with TrainingTooLargeError (mlpipe.scaling).

    The card's ``lineage`` section records the plan's identity and the dataset's URI and sha256.
    Either way the outcome carries ``gate`` (``mlpipe.planning.model_gate``) for the state machine.

    A model whose card records another sha256 than its bytes have is an IntegrityError, before any
    training (``mlpipe.artifacts.check_not_replaced``); a model without its card (a run killed between
    the two writes) is trained again, which writes the missing card.
    """
    model = store.target(run.model_uri)
    if model_complete(model):
        return TaskOutcome("present", model.uri, {"gate": model_gate(run, read_metrics(model), store=store)})
    check_not_replaced(model, consequence="it is neither trained again nor published")
    if run.train_on == "sagemaker":
        raise MissingInputError(
            f"the model {model.uri} (or a metrics.json recording its sha256) is missing after the SageMaker training "
            "job; read the job's log in /aws/sagemaker/TrainingJobs and rerun"
        )
    dataset = _input(store, run.dataset_uri, "dataset", "dataset_uri")
    description = run.description
    result = train_model(
        dataset,
        model,
        estimator=run.estimator,
        hyperparameters=run.hyperparameters,
        cv_folds=run.cv_folds,
        description=description,
        lineage=lineage_record(run.identity("train"), execution_id=run.execution_id, input_targets=[]),
        time_left=time_left,
        known=known_stats(dataset, description),
        sections=data_sections(dataset, run),
        task=run.task,
        target_transform=run.target_transform,
    )
    score_name, score = card_score(result.metrics)
    details = {
        "training_seconds": round(result.seconds, 4),
        "rows": result.metrics["rows"],
        "problem": result.metrics["task"],  # classification or regression ("task" names the step in logs)
        score_name: score,
        "sha256": result.metrics["model_sha256"],
        "gate": model_gate(run, result.metrics, store=store),
    }
    return TaskOutcome("ran" if result.wrote else "present", model.uri, details)


def upload(run: Run, *, store: Store) -> TaskOutcome:
    """Publish the run's model to its published location unless it is already published.

    The published card's ``publication`` section records the plan's identity and the model's URI and sha256.
    """
    published = store.target(run.published_uri)
    if model_complete(published):
        return TaskOutcome("present", published.uri)
    model = _input(store, run.model_uri, "model", "model_uri")
    record = lineage_record(run.identity("upload"), execution_id=run.execution_id, input_targets=[])
    result = publish_model(model, published, publication=record)
    return TaskOutcome("ran" if result.wrote else "present", published.uri, {"sha256": result.sha256})


def promote(run: Run, *, store: Store, settings: Settings) -> dict[str, Any]:
    """Make the run's published model the champion when its run date is the newest so far; announce it.

    Announcing is a ``Model promoted`` event (source ``mlpipe``, detail: the manifest) on
    ``settings.event_bus``, when one is set.
    """
    assert run.publish_root is not None  # the step needs it (mlpipe.steps)
    result = promote_champion(
        run.publish_root,
        run.published_uri,
        run.run_date,
        promoted_by=run.execution_id or "pipeline",
        max_regression=run.max_regression,
        model=run.model,
        store=store,
    )
    outcome = result.as_dict(run.publish_root) | {"event": None}
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
                    "Detail": json.dumps(manifest, allow_nan=False),  # names the model: its "model"
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


def _input(store: Store, uri: str, what: str, field_name: str) -> Target:
    """A task's input target, which must exist: MissingInputError naming the task that makes it."""
    target = store.target(uri)
    if not target.exists():
        raise MissingInputError(
            f"the {what} {target.uri} does not exist; run the {made_by(field_name).name} task first (a new execution "
            "for this run date does)"
        )
    return target
