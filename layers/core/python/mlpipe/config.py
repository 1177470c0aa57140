"""Settings (from the environment, read once) and the run: what one execution works on.

An execution's input may override the deploy-time defaults; ``resolve_run`` turns it into a
``Run`` with every URI spelled out, which the planning step hands to each task. Tasks accept the
same object (``Run.from_event``), so a task's event is just the run, and only the run.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mlpipe.contract import check_on_schema_change
from mlpipe.description import DatasetDescription
from mlpipe.estimators import DEFAULT_ESTIMATOR, check_estimator, validate_hyperparameters
from mlpipe.exceptions import InvalidRequestError, UploadIgnored
from mlpipe.fetch import FetchPolicy
from mlpipe.identity import Identity, run_identities
from mlpipe.naming import DEFAULT_MODEL, check_model_name, model_location
from mlpipe.problem import AUTO as AUTO_TASK
from mlpipe.problem import DEFAULT_TARGET_TRANSFORM, check_target_transform, check_task
from mlpipe.redaction import redact_url
from mlpipe.sagemaker import check_hyperparameter_sizes, sagemaker_root, training_job_name
from mlpipe.sources import LOCAL, check_source, source_kind, source_locations
from mlpipe.steps import STEPS, TASKS
from mlpipe.storage import Store, join_uri, parse_uri

UCI_IRIS_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/iris/iris.data"
DEFAULT_MAX_SOURCE_BYTES = 64 * 1024 * 1024
# The download streams the body to its target (mlpipe.storage.S3Target.stream_write): neither memory nor /tmp
# grows with the source. 5 GiB bounds what one download function moves in its Timeout, and is beyond what a train
# function can hold in memory (sources that large are for training outside Lambda).
MAX_SOURCE_BYTES_LIMIT = 5 * 1024**3
DEFAULT_CV_FOLDS = 5
RUN_DATE_PLACEHOLDER = "{run_date}"
# Where the train step runs (the TrainOn parameter): the train function, or a SageMaker training job.
TRAIN_ON = ("lambda", "sagemaker")
DEFAULT_TRAINING_JOB_PREFIX = "mlpipe"

# Keys an execution's input may carry. Anything else is a typo that would silently be ignored.
INPUT_FIELDS = frozenset(
    {
        "model",
        "run_date",
        "scheduled_time",
        "trigger",
        "uploaded_at",
        "source_url",
        "source_id",
        "force",
        "artifact_root",
        "publish_uri",
        "dataset",
        "estimator",
        "hyperparameters",
        "cv_folds",
        "max_source_bytes",
        "min_cv_accuracy",
        "max_regression",
        "on_schema_change",
        "max_drift",
        "task",
        "target_transform",
        "min_lift_over_baseline",
        # Set by a parent execution (the backfill) to link this one to it; Step Functions reads it, the run does not.
        "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID",
    }
)


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in {"", "0", "false", "no"}:
        return False
    if value in {"1", "true", "yes"}:
        return True
    raise InvalidRequestError(f"environment variable {name}={value!r} must be true or false")


def _json_env(env: Mapping[str, str], name: str) -> Any:
    try:
        return json.loads(env.get(name, "") or "{}")
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"environment variable {name} is not valid JSON: {exc}") from exc


def _fraction(value: Any, name: str) -> float | None:
    """None (off), or a number in [0, 1] (an accuracy, or a drop in accuracy)."""
    return _limit(value, name, high=1.0)


def _limit(value: Any, name: str, *, high: float | None) -> float | None:
    """None (off), or a finite number from 0 to ``high`` (unbounded when None: a drift limit); a string is parsed."""
    if value is None:
        return None
    what = "a number >= 0" if high is None else f"a number between 0 and {high:g}"
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InvalidRequestError(f"{name} must be {what} (or empty: off), got {value!r}") from None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (high is not None and value > high)
    ):
        raise InvalidRequestError(f"{name} must be {what} (or null: off), got {value!r}")
    return float(value)


def _positive_int(value: Any, name: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum and value > maximum):
        upper = f" and at most {maximum}" if maximum else ""
        raise InvalidRequestError(f"{name} must be an integer of at least {minimum}{upper}, got {value!r}")
    return value


def check_max_source_bytes(value: Any, name: str = "max_source_bytes") -> int:
    """``value`` as a source size limit in bytes (1 to 5 GiB), or InvalidRequestError naming ``name`` and the limit."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SOURCE_BYTES_LIMIT:
        raise InvalidRequestError(
            f"{name} must be an integer of at least 1 and at most {MAX_SOURCE_BYTES_LIMIT} "
            f"({MAX_SOURCE_BYTES_LIMIT // 1024**3} GiB), got {value!r}"
        )
    return value


@dataclass(frozen=True)
class Settings:
    """Deploy-time configuration, from the function's environment (set by template.yaml's Parameters)."""

    source_url: str = UCI_IRIS_URL
    # The model a run trains when its input names none (the ModelName parameter).
    model_name: str = DEFAULT_MODEL
    # Where the models' configuration documents are (<uri>/<name>.json, mlpipe.modelconfig); None = none.
    model_configs_uri: str | None = None
    artifact_root: str | None = None
    publish_uri: str | None = None
    dataset: DatasetDescription = field(default_factory=DatasetDescription)
    estimator: str = DEFAULT_ESTIMATOR
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    cv_folds: int = DEFAULT_CV_FOLDS
    max_source_bytes: int = DEFAULT_MAX_SOURCE_BYTES
    # The quality gate (mlpipe.gate); None = off.
    min_cv_accuracy: float | None = None
    max_regression: float | None = None
    # The data contract (mlpipe.contract): what a schema change does ("fail" or "accept"), and the gate's drift limit.
    on_schema_change: str = "fail"
    max_drift: float | None = None
    # What the model predicts (mlpipe.problem) and how much it must beat the trivial baseline by (mlpipe.gate).
    task: str = AUTO_TASK
    target_transform: str = DEFAULT_TARGET_TRANSFORM
    min_lift_over_baseline: float | None = 0.0
    # Where a promotion is announced (an EventBridge bus name); None = nowhere (local runs).
    event_bus: str | None = None
    timezone: str = "UTC"
    # How hard the download tries: per-request timeouts, attempts inside one invocation (the state
    # machine's Retry adds more, spaced further apart) and the first backoff interval.
    source_connect_timeout: float = 5.0
    source_read_timeout: float = 30.0
    source_attempts: int = 3
    source_backoff_seconds: float = 0.5
    # Only the local runner turns these on: in AWS a function's disk is private and temporary, and
    # a loopback source would reach the Lambda runtime API.
    allow_local_storage: bool = False
    allow_loopback_sources: bool = False
    # Training on SageMaker (mlpipe.sagemaker): where, the job names' prefix (the state machine's role may
    # create only jobs named so), and the root of the staged training code and of SageMaker's own output
    # (None: "sagemaker" beside the artifact root).
    train_on: str = "lambda"
    training_job_prefix: str = DEFAULT_TRAINING_JOB_PREFIX
    sagemaker_root: str | None = None
    # The S3 locations a deployment's runs may read (s3://bucket/prefix; SourceLocations), and how long
    # the state machine waits for a source that is not there yet (SourceWaitSeconds; 0: fail at once).
    source_locations: tuple[str, ...] = ()
    source_wait_seconds: int = 0
    # `pipeline invoke --offline` only: no HEAD of an http(s) source (its version is then unknown, as before).
    offline: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default ``os.environ``); raise InvalidRequestError naming a bad one."""
        env = os.environ if env is None else env
        hyper = _json_env(env, "HYPERPARAMETERS")
        description = DatasetDescription.from_value(_json_env(env, "DATASET_DESCRIPTION"), where="DATASET_DESCRIPTION")
        task = check_task((env.get("TASK") or AUTO_TASK).strip().lower(), "TASK")
        target_transform = check_target_transform(env.get("TARGET_TRANSFORM") or None, task, "TARGET_TRANSFORM")
        estimator = check_estimator(env.get("ESTIMATOR") or DEFAULT_ESTIMATOR, task)
        lift = env.get("MIN_LIFT_OVER_BASELINE", "0")
        try:
            cv_folds = int(env.get("CV_FOLDS", DEFAULT_CV_FOLDS))
            max_bytes = int(env.get("MAX_SOURCE_BYTES", DEFAULT_MAX_SOURCE_BYTES))
            attempts = int(env.get("SOURCE_ATTEMPTS", 3))
            connect_timeout = float(env.get("SOURCE_CONNECT_TIMEOUT_SECONDS", 5.0))
            read_timeout = float(env.get("SOURCE_READ_TIMEOUT_SECONDS", 30.0))
            backoff = float(env.get("SOURCE_BACKOFF_SECONDS", 0.5))
            wait = int(env.get("SOURCE_WAIT_SECONDS") or 0)
        except ValueError as exc:
            raise InvalidRequestError(f"a numeric setting is not a number: {exc}") from exc
        train_on = (env.get("TRAIN_ON") or "lambda").strip().lower()
        if train_on not in TRAIN_ON:
            raise InvalidRequestError(f"TRAIN_ON={train_on!r} must be one of {', '.join(TRAIN_ON)}")
        if min(connect_timeout, read_timeout) <= 0 or backoff < 0:
            raise InvalidRequestError("SOURCE_*_TIMEOUT_SECONDS must be > 0 and SOURCE_BACKOFF_SECONDS >= 0")
        settings = cls(
            source_url=env.get("SOURCE_URL") or UCI_IRIS_URL,
            model_name=check_model_name(env.get("MODEL_NAME") or DEFAULT_MODEL, "MODEL_NAME"),
            model_configs_uri=env.get("MODEL_CONFIGS_URI") or None,
            artifact_root=env.get("ARTIFACT_ROOT") or None,
            publish_uri=env.get("PUBLISH_URI") or None,
            dataset=description,
            estimator=estimator,
            hyperparameters=validate_hyperparameters(estimator, hyper, where="HYPERPARAMETERS", task=task),
            cv_folds=_positive_int(cv_folds, "CV_FOLDS", minimum=2, maximum=100),
            max_source_bytes=check_max_source_bytes(max_bytes, "MAX_SOURCE_BYTES"),
            min_cv_accuracy=_fraction(env.get("MIN_CV_ACCURACY") or None, "MIN_CV_ACCURACY"),
            max_regression=_fraction(env.get("MAX_REGRESSION") or None, "MAX_REGRESSION"),
            on_schema_change=check_on_schema_change(env.get("ON_SCHEMA_CHANGE") or "fail", "ON_SCHEMA_CHANGE"),
            max_drift=_limit(env.get("MAX_DRIFT") or None, "MAX_DRIFT", high=None),
            task=task,
            target_transform=target_transform,
            min_lift_over_baseline=_fraction(lift or None, "MIN_LIFT_OVER_BASELINE"),
            event_bus=env.get("EVENT_BUS_NAME") or None,
            timezone=env.get("TIMEZONE") or "UTC",
            source_connect_timeout=connect_timeout,
            source_read_timeout=read_timeout,
            source_attempts=_positive_int(attempts, "SOURCE_ATTEMPTS", maximum=10),
            source_backoff_seconds=backoff,
            allow_local_storage=_flag(env, "MLPIPE_ALLOW_LOCAL_STORAGE"),
            allow_loopback_sources=_flag(env, "MLPIPE_ALLOW_LOOPBACK_SOURCES"),
            train_on=train_on,
            training_job_prefix=env.get("TRAINING_JOB_PREFIX") or DEFAULT_TRAINING_JOB_PREFIX,
            sagemaker_root=env.get("SAGEMAKER_ROOT") or None,
            source_locations=source_locations(env.get("SOURCE_LOCATIONS", "")),
            source_wait_seconds=_positive_int(wait, "SOURCE_WAIT_SECONDS", minimum=0, maximum=86400),
            offline=_flag(env, "MLPIPE_OFFLINE"),
        )
        settings.tz()  # fail fast on an unknown timezone
        return settings

    def check_source(self, url: str) -> None:
        """InvalidRequestError unless a run of this deployment may read ``url`` (``mlpipe.sources.check_source``)."""
        check_source(
            url,
            local_run=self.allow_local_storage,
            allow_loopback=self.allow_loopback_sources,
            locations=self.source_locations,
        )

    def fetch_policy(
        self,
        max_bytes: int,
        min_class_rows: int = 1,
        time_budget: float | None = None,
        *,
        task: str = AUTO_TASK,
        target_transform: str = DEFAULT_TARGET_TRANSFORM,
    ) -> FetchPolicy:
        """How hard a download (or the plan's HEAD) tries, from these settings; the label checked as ``task``
        reads it."""
        return FetchPolicy(
            max_bytes=max_bytes,
            connect_timeout=self.source_connect_timeout,
            read_timeout=self.source_read_timeout,
            attempts=self.source_attempts,
            backoff_seconds=self.source_backoff_seconds,
            allow_loopback=self.allow_loopback_sources,
            min_class_rows=min_class_rows,
            time_budget=time_budget,
            task=task,
            target_transform=target_transform,
        )

    def hyperparameters_for(self, estimator: str) -> dict[str, Any]:
        """The deploy-time hyperparameters, which belong to the deploy-time estimator: a run that picks another
        estimator starts from scikit-learn's defaults for it."""
        return dict(self.hyperparameters) if estimator == self.estimator else {}

    def tz(self) -> ZoneInfo:
        """The schedule's timezone, which decides the run date of a scheduled run."""
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidRequestError(f"TIMEZONE={self.timezone!r} is not an IANA timezone name") from exc


@dataclass(frozen=True)
class Run:
    """One execution's work, with every location spelled out: made once by the plan (``resolve_run``), read
    back by each task (``from_event``). Its dict form is each task's event.

    A task's event needs only the fields its step names (``mlpipe.steps``); a location a task does not
    need may be absent from a hand-made event, and is then empty here.
    """

    run_date: str
    # The model's name: its published location is <publish root>/<model> (publish_root below is that location).
    model: str = DEFAULT_MODEL
    source_url: str = ""
    dataset_uri: str = ""
    model_uri: str = ""
    published_uri: str = ""
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    estimator: str = DEFAULT_ESTIMATOR
    dataset: dict[str, Any] = field(default_factory=lambda: DatasetDescription().to_dict())
    cv_folds: int = DEFAULT_CV_FOLDS
    max_source_bytes: int = DEFAULT_MAX_SOURCE_BYTES
    execution_id: str | None = None
    source_id: str | None = None
    # The source's version the plan saw (mlpipe.sources.source_version): the download reads exactly it.
    source_version: dict[str, Any] | None = None
    force: str | None = None
    # Each target's identity and the inputs it is made from, by task (mlpipe.identity): recorded in
    # the lineage written beside each output.
    identities: dict[str, Any] = field(default_factory=dict)
    # The publish location's root (where champion.json is) and the quality gate: not part of any identity.
    publish_root: str | None = None
    min_cv_accuracy: float | None = None
    max_regression: float | None = None
    # The data contract's policy on a schema change and the gate's drift limit (mlpipe.contract): no identity either.
    on_schema_change: str = "fail"
    max_drift: float | None = None
    # The task (auto decided by the data: mlpipe.problem), the regression target's transform, the baseline rule.
    task: str = AUTO_TASK
    target_transform: str = DEFAULT_TARGET_TRANSFORM
    min_lift_over_baseline: float | None = 0.0
    # Where train runs ("lambda" or "sagemaker", from the deployment, not the input: the stack's roles decide
    # what may run), and for SageMaker the job's name (the state machine appends the retry count), the staged
    # training code (mlpipe.sagemaker.stage_source, by the plan) and where SageMaker writes its model.tar.gz.
    train_on: str = "lambda"
    training_job: str | None = None
    code_uri: str | None = None
    training_output_uri: str | None = None

    def to_event(self) -> dict[str, Any]:
        """The JSON object the state machine passes to every task."""
        return asdict(self)

    @property
    def description(self) -> DatasetDescription:
        """The dataset description, as an object."""
        return DatasetDescription.from_value(self.dataset)

    def fetch_url(self, settings: Settings) -> str:
        """The URL the download fetches: the run's, or the deployment's when the run carries that one without
        its secrets (``resolve_run`` keeps a deploy-time credential out of the run the state machine records)."""
        deployed = fill_date(settings.source_url, self.run_date)
        if deployed != self.source_url and redact_url(deployed) == self.source_url:
            return deployed
        return self.source_url

    def identity(self, task: str) -> dict[str, Any] | None:
        """The plan's identity of ``task``'s target (``{"identity", "inputs"}``), if the run has it."""
        found = self.identities.get(task)
        return found if isinstance(found, dict) else None

    @classmethod
    def from_event(cls, event: Any, settings: Settings, *, needs: tuple[str, ...], store: Store) -> Run:
        """Parse a task's event (the plan's run, or a hand-made part of it) into a Run, once, at the edge.

        Every field there is is checked; ``needs`` (the step's, from ``mlpipe.steps``) must be there.
        A field of the run the event does not carry takes the deploy-time default where there is one
        (the estimator and its hyperparameters, the description, folds, size limit and gate), as the
        plan would have; anything that is not a field of the run is an error.
        """
        if not isinstance(event, dict):
            raise InvalidRequestError(f"the event must be a JSON object, got {type(event).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(event) - known)
        if unknown:
            raise InvalidRequestError(
                f"unknown field(s) in the event: {', '.join(unknown)}; "
                f"a task takes the run's fields: {', '.join(sorted(known))}"
            )
        missing = [name for name in needs if event.get(name) is None]
        if missing:
            raise InvalidRequestError(f"the event lacks {', '.join(missing)}")
        given = {name: value for name, value in event.items() if value is not None}
        for name in (
            "run_date",
            "model",
            "source_url",
            "dataset_uri",
            "model_uri",
            "published_uri",
            "source_id",
            "force",
        ):
            if name in given and not isinstance(given[name], str):
                raise InvalidRequestError(f"{name} must be a string, got {given[name]!r}")
        parse_run_date(event.get("run_date"))
        given["model"] = check_model_name(given.get("model") or settings.model_name)
        if given.get("source_url"):
            settings.check_source(given["source_url"])
        if not isinstance(given.get("source_version", {}), dict):
            raise InvalidRequestError(f"source_version must be an object (the plan's), got {given['source_version']!r}")
        for name in ("dataset_uri", "model_uri", "published_uri", "publish_root", "code_uri", "training_output_uri"):
            if name in given:
                store.check(given[name])
        task = given["task"] = check_task(given.get("task", settings.task))
        given["target_transform"] = check_target_transform(
            given.get("target_transform", settings.target_transform), task
        )
        estimator = check_estimator(given.get("estimator") or settings.estimator, task)
        hyper = given.get("hyperparameters")
        given["hyperparameters"] = validate_hyperparameters(
            estimator, settings.hyperparameters_for(estimator) if hyper is None else hyper, task=task
        )
        given["estimator"] = estimator
        dataset = given.get("dataset")
        given["dataset"] = (settings.dataset if dataset is None else DatasetDescription.from_value(dataset)).to_dict()
        given["cv_folds"] = _positive_int(given.get("cv_folds", settings.cv_folds), "cv_folds", minimum=2, maximum=100)
        given["max_source_bytes"] = check_max_source_bytes(given.get("max_source_bytes", settings.max_source_bytes))
        for name in ("min_cv_accuracy", "max_regression", "min_lift_over_baseline"):  # null: the plan's "off"
            given[name] = _fraction(event[name] if name in event else getattr(settings, name), name)
        given["on_schema_change"] = check_on_schema_change(given.get("on_schema_change", settings.on_schema_change))
        given["max_drift"] = _limit(event.get("max_drift", settings.max_drift), "max_drift", high=None)
        if given.get("train_on", "lambda") not in TRAIN_ON:
            raise InvalidRequestError(f"train_on must be one of {', '.join(TRAIN_ON)}, got {given['train_on']!r}")
        if not isinstance(given.get("identities", {}), dict):
            raise InvalidRequestError(f"identities must be an object (the plan's), got {given['identities']!r}")
        return cls(**given)


def check_object(value: Any, allowed: Collection[str], what: str) -> None:
    """InvalidRequestError unless ``value`` is a JSON object whose keys are all ``allowed`` (a typo is not ignored)."""
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{what} must be a JSON object, got {type(value).__name__}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise InvalidRequestError(
            f"unknown field(s) in {what}: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def parse_run_date(value: Any) -> dt.date:
    """``YYYY-MM-DD`` to a date, or InvalidRequestError saying what is wrong."""
    if not isinstance(value, str):
        raise InvalidRequestError(f"run_date must be a string YYYY-MM-DD, got {value!r}")
    if len(value) != 10:
        raise InvalidRequestError(f"run_date {value!r} is not a date YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequestError(f"run_date {value!r} is not a valid date YYYY-MM-DD: {exc}") from exc


def run_date_for(execution_input: Mapping[str, Any], settings: Settings, now: dt.datetime | None = None) -> str:
    """The run date: ``run_date``, else the schedule's ``scheduled_time`` (or an upload's ``uploaded_at``) in the
    schedule's timezone, else today (UTC)."""
    if execution_input.get("run_date") is not None:
        return parse_run_date(execution_input["run_date"]).isoformat()
    scheduled = execution_input.get("scheduled_time") or execution_input.get("uploaded_at")
    if scheduled is not None:
        if not isinstance(scheduled, str):
            raise InvalidRequestError(f"scheduled_time must be an ISO-8601 string, got {scheduled!r}")
        try:
            when = dt.datetime.fromisoformat(scheduled.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidRequestError(f"scheduled_time {scheduled!r} is not an ISO-8601 timestamp") from exc
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.astimezone(settings.tz()).date().isoformat()
    return (now or dt.datetime.now(dt.UTC)).date().isoformat()


def resolve_run(
    execution_input: Any,
    settings: Settings,
    now: dt.datetime | None = None,
    *,
    execution_id: str | None = None,
    store: Store | None = None,
    versions: Callable[[str, str, bool], dict[str, Any] | None] | None = None,
) -> Run:
    """Merge an execution's input over the settings and derive every target URI of the run.

    ``execution_id`` (the Step Functions execution) travels in the run so that every function can
    log it as its correlation id. ``store`` checks the roots (default: the settings' store).
    ``versions(url, kind, named)`` looks up the source's version (the plan's, ``mlpipe.sources.source_version``;
    None here: no lookup, the source's name alone); ``named`` says the input gave a ``source_id``, which
    is then the dataset's identity alone: the version enters it only without one. The version always
    travels in the run, so that the download reads exactly it.
    """
    store = store or Store.from_settings(settings)
    if execution_input is None:
        execution_input = {}
    check_object(execution_input, INPUT_FIELDS, "the execution input")
    if execution_input.get("trigger") == "upload":
        execution_input = upload_input(execution_input, settings)
    run_date = run_date_for(execution_input, settings, now)
    source_url, source_id, carried_url = _source(execution_input, settings, run_date)
    force = execution_input.get("force")
    if force is not None and force not in TASKS:
        raise InvalidRequestError(
            f"force must be one of {', '.join(TASKS)} (that task and every later one rerun), got {force!r}"
        )
    model = check_model_name(execution_input.get("model") or settings.model_name)
    roots = _roots(execution_input, settings, store)
    roots["publish_uri"] = model_location(roots["publish_uri"], model)  # the model's own: its champion is there
    task = check_task(execution_input.get("task", settings.task))
    target_transform = check_target_transform(execution_input.get("target_transform", settings.target_transform), task)
    estimator = check_estimator(execution_input.get("estimator") or settings.estimator, task)
    hyper = settings.hyperparameters_for(estimator)
    hyper.update(validate_hyperparameters(estimator, execution_input.get("hyperparameters", {}), task=task))
    description = DatasetDescription.from_value(execution_input.get("dataset"), base=settings.dataset)
    check_labels_fit_task(description, task)
    cv_folds = _positive_int(execution_input.get("cv_folds", settings.cv_folds), "cv_folds", minimum=2, maximum=100)
    max_bytes = check_max_source_bytes(execution_input.get("max_source_bytes", settings.max_source_bytes))
    named = bool(execution_input.get("source_id"))
    found = source_kind(source_url)
    version = versions(source_url, found, named) if versions else None
    identities = run_identities(
        run_date=run_date,
        source_id=source_id,
        description=description.to_dict(),
        estimator=estimator,
        hyperparameters=hyper,
        cv_folds=cv_folds,
        force=force,
        nonce=execution_id or f"uuid:{uuid.uuid4()}",
        source_version=None if named else version,
        task=task,
        target_transform=target_transform,
    )
    targets = {
        candidate.output.field: store.join(
            roots[candidate.output.root], run_date, identities[candidate.name].id, candidate.output.file
        )
        for candidate in STEPS
        if candidate.output
    }
    sagemaker = _sagemaker_fields(settings, roots["artifact_root"], hyper, description, identities, execution_id)
    return Run(
        run_date=run_date,
        model=model,
        source_url=carried_url,
        **targets,
        hyperparameters=hyper,
        estimator=estimator,
        dataset=description.to_dict(),
        cv_folds=cv_folds,
        max_source_bytes=max_bytes,
        execution_id=execution_id,
        source_id=source_id if source_id != source_url else None,
        source_version=version,
        force=force,
        publish_root=roots["publish_uri"],
        min_cv_accuracy=_fraction(execution_input.get("min_cv_accuracy", settings.min_cv_accuracy), "min_cv_accuracy"),
        max_regression=_fraction(execution_input.get("max_regression", settings.max_regression), "max_regression"),
        on_schema_change=check_on_schema_change(execution_input.get("on_schema_change", settings.on_schema_change)),
        max_drift=_limit(execution_input.get("max_drift", settings.max_drift), "max_drift", high=None),
        task=task,
        target_transform=target_transform,
        min_lift_over_baseline=_fraction(
            execution_input.get("min_lift_over_baseline", settings.min_lift_over_baseline), "min_lift_over_baseline"
        ),
        identities={task: found.to_dict() for task, found in identities.items()},
        train_on=settings.train_on,
        **sagemaker,
    )


def check_labels_fit_task(description: DatasetDescription, task: str) -> None:
    """InvalidRequestError when the description's label allow-list cannot be a regression target (a non-number)."""
    if task != "regression" or description.labels is None:
        return
    for label in description.labels:
        try:
            float(label)
        except ValueError:
            raise InvalidRequestError(
                f"the dataset description's labels list {label!r}, not a number, and the task is regression: a "
                "regression target is numeric; set task classification, or leave labels out"
            ) from None


def _source(execution_input: Mapping[str, Any], settings: Settings, run_date: str) -> tuple[str, str, str]:
    """The run's source URL (``{run_date}`` filled in, checked), the name it enters the identity under, and
    the URL the run carries to the download.

    The name defaults to the URL without its secrets (``mlpipe.redaction``): a presigned URL signed anew
    each day keeps one identity, and no identity or lineage record holds a credential. The run carries
    the deployment's URL without its secrets too (the download takes it from its own settings:
    ``Run.fetch_url``); a URL in the execution's input is carried as given, since the download has no
    other way to it (and Step Functions records that input anyway).
    """
    given = execution_input.get("source_url")
    source_url = given or settings.source_url
    if not isinstance(source_url, str):
        raise InvalidRequestError(f"source_url must be a string, got {source_url!r}")
    # A source published as one file per day names it with {run_date}: each run fetches its own date's file.
    source_url = fill_date(source_url, run_date)
    settings.check_source(source_url)
    if source_kind(source_url) == LOCAL:  # ./data.csv and file:///…/data.csv: the one absolute path they name
        source_url = parse_uri(source_url)[1]
    source_id = execution_input.get("source_id") or source_url
    if isinstance(source_id, str):
        source_id = redact_url(fill_date(source_id, run_date))
    if not isinstance(source_id, str) or len(source_id) > 2048:
        shown = redact_url(source_id) if isinstance(source_id, str) else source_id
        raise InvalidRequestError(f"source_id must be a string (a stable name of the source), got {shown!r}")
    return source_url, source_id, source_url if given else redact_url(source_url)


_DATE_FIELDS = {"{run_date}": r"(?P<run_date>\d{4}-\d{2}-\d{2})", "{yyyy}": r"(?P<yyyy>\d{4})"}
_DATE_FIELDS |= {"{mm}": r"(?P<mm>\d{2})", "{dd}": r"(?P<dd>\d{2})"}


def upload_input(execution_input: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The input of a run started by an upload (``trigger`` "upload"): its ``run_date`` taken from the object's key
    by the deployment's SourceUrl (``{run_date}`` or ``{yyyy}``/``{mm}``/``{dd}`` in it), else from ``uploaded_at``.

    UploadIgnored when the object is not one the SourceUrl names (another key under the bucket).
    """
    given = execution_input.get("source_url")
    template = settings.source_url
    if not isinstance(given, str) or not template.startswith("s3://"):
        raise UploadIgnored(f"the upload {given!r} is not an S3 object of the deployment's SourceUrl {template!r}")
    pattern = re.escape(template)
    for placeholder, group in _DATE_FIELDS.items():
        pattern = pattern.replace(re.escape(placeholder), group, 1).replace(
            re.escape(placeholder), f"(?P={group[4 : group.index('>')]})"
        )
    match = re.fullmatch(pattern, given)
    if match is None:
        raise UploadIgnored(
            f"the uploaded object {given} does not match the SourceUrl {template}: not this pipeline's data"
        )
    found = match.groupdict()
    if found.get("run_date"):
        run_date = found["run_date"]
    elif found.get("yyyy") and found.get("mm") and found.get("dd"):
        run_date = f"{found['yyyy']}-{found['mm']}-{found['dd']}"
    else:
        return dict(execution_input)  # no date in the key: the upload's time decides (run_date_for)
    try:
        parse_run_date(run_date)
    except InvalidRequestError:
        raise UploadIgnored(f"the uploaded object {given}: {run_date!r} in its key is not a date") from None
    if fill_date(template, run_date) != given:  # {run_date} and {yyyy}... disagree
        raise UploadIgnored(f"the uploaded object {given}: the dates in its key disagree")
    return dict(execution_input) | {"run_date": run_date}


def fill_date(template: str, run_date: str) -> str:
    """``template`` with ``{run_date}`` (YYYY-MM-DD), ``{yyyy}``, ``{mm}`` and ``{dd}`` filled in from ``run_date``."""
    year, month, day = run_date.split("-")
    for name, value in ((RUN_DATE_PLACEHOLDER, run_date), ("{yyyy}", year), ("{mm}", month), ("{dd}", day)):
        template = template.replace(name, value)
    return template


def _roots(execution_input: Mapping[str, Any], settings: Settings, store: Store) -> dict[str, str]:
    """``artifact_root`` and ``publish_uri``, from the input or the settings, checked by the store."""
    roots: dict[str, str] = {}
    for name in ("artifact_root", "publish_uri"):
        value = execution_input.get(name) or getattr(settings, name)
        if value is None:
            raise InvalidRequestError(
                f"{name} is not set: pass it in the execution input or deploy with the "
                f"{name.replace('_', ' ')} parameter"
            )
        store.check(value)
        roots[name] = value
    return roots


def _sagemaker_fields(
    settings: Settings,
    artifact_root: str,
    hyper: dict[str, Any],
    description: DatasetDescription,
    identities: dict[str, Identity],
    execution_id: str | None,
) -> dict[str, Any]:
    """The training job's name and output location when the run trains on SageMaker, else nothing."""
    if settings.train_on != "sagemaker":
        return {}
    check_hyperparameter_sizes(
        {
            "hyperparameters": hyper,
            "the dataset description": description.to_dict(),
            "the model's identity": identities["train"].to_dict(),
        }
    )
    root = sagemaker_root(settings.sagemaker_root, artifact_root)
    return {
        "training_job": training_job_name(settings.training_job_prefix, identities["train"].id, execution_id),
        "training_output_uri": join_uri(root, "output"),
    }
