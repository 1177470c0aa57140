"""Run ``statemachine/pipeline.asl.json`` on this machine: moto's Step Functions interpreter executes it,
and every Lambda task runs the real handler in-process (see ``lambdas.py``).

``local_aws()`` opens the moto context; ``LocalPipeline`` creates the state machine (with the
same ``DefinitionSubstitutions`` names as template.yaml), starts executions, streams their history
and turns the end of an execution into the summary that ``pipeline run --json`` prints.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any, cast

from mlpipe.backfill import DEFAULT_MAX_CONCURRENCY
from mlpipe.report import describe_error, summary_from_failure
from mlpipe.sagemaker import IMAGE_REPOSITORY, IMAGE_TAG
from mlpipe.steps import STEPS, TASKS, state_to_step, step
from pipeline_local.environment import temporary_environment
from pipeline_local.lambdas import ACCOUNT, FUNCTIONS, REGION, REPO_ROOT, InProcessLambdas, function_arn, load_handler
from pipeline_local.nested import nested_executions
from pipeline_local.sagemaker import InProcessTrainingJobs

ASL_PATH = REPO_ROOT / "statemachine" / "pipeline.asl.json"
SUBSTITUTIONS = {f"{name.capitalize()}FunctionArn": function_arn(name) for name in FUNCTIONS} | {
    "ExecutionTimeoutSeconds": "3600",  # a JSON integer in the ASL; AWS gets the template's ExecutionTimeoutSeconds
    # The SageMaker training job's deploy-time settings: the template's defaults (numbers are JSON integers).
    "SageMakerRoleArn": f"arn:aws:iam::{ACCOUNT}:role/local-sagemaker",
    # The template's default, scikit-learn's prebuilt image (the account: its ScikitLearnImageRegistry map).
    "SageMakerImageUri": f"683313688378.dkr.ecr.{REGION}.amazonaws.com/{IMAGE_REPOSITORY}:{IMAGE_TAG}",
    "SageMakerRegion": REGION,
    "SageMakerInstanceType": "ml.m5.large",
    "SageMakerInstanceCount": "1",
    "SageMakerVolumeSizeGB": "30",
    "SageMakerMaxRuntimeSeconds": "3600",
}
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/local-pipeline"
LOCAL_ENV = {"MLPIPE_ALLOW_LOCAL_STORAGE": "true", "MLPIPE_ALLOW_LOOPBACK_SOURCES": "true"}
# The states of describe_event's notes: the Task states of the three tasks that make a target, those whose
# Catch puts the error in $.error (the SageMaker job's too), and the plan's and promotion's own.
TASK_STATES = {state: name for state, name in state_to_step().items() if name in TASKS}
CAUGHT_STATES = {state for each in STEPS if each.failed_state for state in each.states} | {"Train on SageMaker"}
PLAN_STATE = step("plan").states[0]
PROMOTE_STATE = step("promote").states[0]
EventPrinter = Callable[[dict[str, Any]], None]
# Between two looks at a running execution when nothing was heard from the interpreter.
MIN_POLL_SECONDS = 0.005
MAX_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class RetryNotice:
    """A task the state machine is about to retry: which state, after which error, when, which attempt."""

    state: str
    error: str
    delay_seconds: float
    attempt: int
    max_attempts: int

    def describe(self) -> str:
        """``retrying Download dataset in 15 s (attempt 2 of 4): SourceUnavailableError``."""
        return (
            f"retrying {self.state} in {self.delay_seconds:.3g} s "
            f"(attempt {self.attempt} of {self.max_attempts}): {self.error}"
        )


RetryPrinter = Callable[[RetryNotice], None]


def moto_config(*, real_s3: bool) -> dict[str, Any]:
    """moto's configuration: execute ASL, Docker-less Lambda, and S3 left alone when ``real_s3``."""
    config: dict[str, Any] = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    if real_s3:
        config["core"] = {"passthrough": {"services": ["s3"]}, "mock_credentials": False}
    return config


@contextlib.contextmanager
def local_aws(*, real_s3: bool = False) -> Iterator[None]:
    """moto for Step Functions and Lambda; S3 too unless ``real_s3`` (then S3 is AWS, or AWS_ENDPOINT_URL).

    moto intercepts only requests to AWS's own endpoints, so a global AWS_ENDPOINT_URL (meant for
    a local S3-compatible server) is narrowed to S3 (AWS_ENDPOINT_URL_S3) for the duration.
    """
    _defer_moto_batch()
    from moto import mock_aws

    saved = dict(os.environ)
    endpoint = os.environ.pop("AWS_ENDPOINT_URL", None)
    if endpoint and real_s3:
        os.environ.setdefault("AWS_ENDPOINT_URL_S3", endpoint)
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    try:
        with mock_aws(config=cast(Any, moto_config(real_s3=real_s3))):
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _defer_moto_batch() -> None:
    """Import moto's Batch service (and with it all of EC2, ~1 s) only if something uses it.

    moto's ASL parser imports ``moto.batch.utils`` for the Batch service task's ``JobStatus``, and
    importing that runs ``moto/batch/__init__.py``, which loads the Batch backend and EC2's models.
    This state machine has no Batch task: the package is registered unexecuted, so its submodules
    import on their own, and the first attribute asked of the package itself (``batch_backends``,
    by moto's backend registry) executes it for real.
    """
    if "moto.batch" in sys.modules:
        return
    spec = importlib.util.find_spec("moto.batch")
    if spec is None or spec.loader is None:
        return
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def load(name: str) -> Any:
        del package.__dict__["__getattr__"]
        loader.exec_module(package)
        return getattr(package, name)

    package.__getattr__ = load  # type: ignore[method-assign]
    sys.modules["moto.batch"] = package


_parsed: dict[str, Any] = {}


def _parse_each_definition_once() -> None:
    """Parse an ASL definition once per process: moto parses it on CreateStateMachine and on every execution.

    ANTLR makes a parse cost ~0.1 s. The parsed program is a tree of immutable components (an
    execution's state lives in its own ``Environment``), so executions can share it.
    """
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    if getattr(AmazonStateLanguageParser.parse, "memoized", False):
        return
    original = AmazonStateLanguageParser.parse

    def parse(definition: str) -> Any:
        if definition not in _parsed:
            _parsed[definition] = original(definition)  # a definition that fails to parse raises, uncached
        return _parsed[definition]

    parse.memoized = True  # type: ignore[attr-defined]
    AmazonStateLanguageParser.parse = staticmethod(parse)  # type: ignore[method-assign]


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves files without logging each request to stderr."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serve_directory(
    directory: Path | str, handler: type[SimpleHTTPRequestHandler] = QuietHandler
) -> Iterator[ThreadingHTTPServer]:
    """Serve ``directory`` over HTTP on 127.0.0.1 (a free port) in a thread; yield the server."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(directory)))
    server.daemon_threads = True
    # serve_forever looks for shutdown() every poll_interval (0.5 s by default): a run's exit waited for it.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="http-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def serve_sample() -> Iterator[str]:
    """Serve the bundled Iris sample (UCI format) over 127.0.0.1 HTTP; yield its URL."""
    sample = Path(str(files("pipeline_local") / "data" / "iris.data"))
    with serve_directory(sample.parent) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/{sample.name}"


class LocalPipeline:
    """The state machine on moto, its Lambda tasks in-process. Use inside ``local_aws()``."""

    def __init__(
        self,
        *,
        env: dict[str, str] | None = None,
        retry_delay_scale: float = 1.0,
        asl_path: Path = ASL_PATH,
        name: str = "mlpipe-local",
    ) -> None:
        import boto3
        from botocore.config import Config

        self.retry_delay_scale = retry_delay_scale
        self._retries: list[RetryNotice] = []
        with temporary_environment({**LOCAL_ENV, **(env or {})}):
            self.lambdas = InProcessLambdas({name: load_handler(name) for name in FUNCTIONS})
        self.training_jobs = InProcessTrainingJobs({**LOCAL_ENV, **(env or {})})
        _parse_each_definition_once()
        definition = asl_path.read_text()
        for key, value in SUBSTITUTIONS.items():
            definition = definition.replace("${" + key + "}", value)
        # An explicit AWS endpoint and dummy keys: moto answers, whatever the environment says.
        self.sfn = boto3.client(
            "stepfunctions",
            region_name=REGION,
            endpoint_url=f"https://states.{REGION}.amazonaws.com",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"max_attempts": 1}),
        )
        self.state_machine_arn = self.sfn.create_state_machine(
            name=f"{name}-{uuid.uuid4().hex[:8]}", definition=definition, roleArn=ROLE_ARN
        )["stateMachineArn"]

    def run(
        self,
        execution_input: dict[str, Any],
        *,
        on_event: EventPrinter | None = None,
        on_retry: RetryPrinter | None = None,
        timeout: float = 600.0,
    ) -> dict[str, Any]:
        """Start an execution, wait for it, and return its summary.

        ``on_event`` gets each history event as it happens, ``on_retry`` each retry of a task (just
        before the interpreter waits for it).
        """
        with (
            self.lambdas.active(),
            self.training_jobs.active(),
            _retry_delays(self.retry_delay_scale, on_retry=self._retried),
        ):
            arn = self.start(execution_input)
            return self.wait(arn, on_event=on_event, on_retry=on_retry, timeout=timeout)

    def start(self, execution_input: dict[str, Any]) -> str:
        """Start an execution (the Lambda routing must be active) and return its ARN."""
        response = self.sfn.start_execution(
            stateMachineArn=self.state_machine_arn,
            name=f"run-{uuid.uuid4().hex[:12]}",
            input=json.dumps(execution_input),
        )
        return str(response["executionArn"])

    def wait(
        self,
        execution_arn: str,
        *,
        on_event: EventPrinter | None = None,
        on_retry: RetryPrinter | None = None,
        timeout: float = 600.0,
    ) -> dict[str, Any]:
        """Follow an execution until it ends, passing each new history event to ``on_event``; return the summary.

        The history is fetched again only when the interpreter added an event (moto's
        GetExecutionHistory ignores ``maxResults`` and ``nextToken`` and returns a deep copy of all of
        it), and at most every ``MAX_POLL_SECONDS`` otherwise, so a task waiting out a Retry interval
        costs no CPU.
        """
        deadline = time.monotonic() + timeout
        seen = 0
        pause = MIN_POLL_SECONDS
        changed = threading.Event()
        with _history_notifications(changed):
            while True:
                changed.clear()
                status = self.sfn.describe_execution(executionArn=execution_arn)
                events = self.new_events(execution_arn, seen)
                for event in events:
                    if on_event:
                        on_event(event)
                seen += len(events)
                while self._retries:
                    notice = self._retries.pop(0)
                    if on_retry:
                        on_retry(notice)
                if status["status"] != "RUNNING":
                    return summary_from_execution(status)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"execution {execution_arn} still running after {timeout}s")
                pause = MIN_POLL_SECONDS if changed.wait(pause) else min(pause * 2, MAX_POLL_SECONDS)

    def _retried(self, notice: RetryNotice) -> None:
        self._retries.append(notice)
        _notify_listeners()

    def new_events(self, execution_arn: str, seen: int) -> list[dict[str, Any]]:
        """The history events after the first ``seen``, oldest first.

        moto's GetExecutionHistory has no paging (it ignores ``maxResults`` and ``nextToken``) and
        serialises a deep copy of the whole history on every call, ~50 ms here: read the new events
        straight from the interpreter's history instead (the same dicts GetExecutionHistory returns,
        but for the timestamp, an ISO string there), and fall back to the API if that changes.
        """
        history = _interpreter_history(execution_arn)
        if history is None:
            return self.history(execution_arn)[seen:]
        events = []
        for recorded in history[seen:]:
            event = dict(recorded)
            with contextlib.suppress(TypeError, ValueError):
                event["timestamp"] = dt.datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))
            events.append(event)
        return events

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """All history events of an execution, oldest first."""
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            events.extend(page["events"])
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]


def _interpreter_history(execution_arn: str) -> list[dict[str, Any]] | None:
    """A shallow copy of moto's history list of a running or finished execution, or None if not reachable."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    try:
        execution: Any = stepfunctions_parser_backends[ACCOUNT][REGION].describe_execution(execution_arn)
        manager = execution.exec_worker.env.event_manager
        with manager._mutex:
            return list(manager._history_event_list)
    except Exception:  # not there (yet), or moto's internals moved: the caller uses the API instead
        return None


def summary_from_execution(status: dict[str, Any]) -> dict[str, Any]:
    """The summary: an execution's output when it succeeded, its Cause (our JSON) when it failed."""
    if status["status"] == "SUCCEEDED":
        return dict(json.loads(status["output"]))
    return summary_from_failure(status.get("error") or status["status"], status.get("cause"))


def describe_event(event: dict[str, Any]) -> str | None:
    """One line for a history event worth showing (states entered and exited, failures), else None."""
    kind = event["type"]
    stamp = event["timestamp"].strftime("%H:%M:%S.%f")[:-3] if hasattr(event["timestamp"], "strftime") else ""
    if kind.endswith("StateEntered"):
        return f"{stamp}  start  {event['stateEnteredEventDetails']['name']}"
    if kind.endswith("StateExited"):
        details = event["stateExitedEventDetails"]
        note = ""
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            output = json.loads(details.get("output") or "null")
            tasks = output.get("tasks") if isinstance(output, dict) else None
            caught = output.get("error") if isinstance(output, dict) else None
            if details["name"] in CAUGHT_STATES and isinstance(caught, dict):
                note = f"  (failed: {caught.get('Error')})"  # its Catch put the error in $.error
            elif details["name"] == PLAN_STATE and isinstance(output, dict):
                pending = [name for name, task in (tasks or {}).items() if task.get("state") == "pending"]
                will_run = "nothing to run"
                if pending:
                    will_run = f"pending, {STATE_MEANINGS['pending']}: {', '.join(pending)}"
                note = f"  (start at: {output.get('start_at')}; {will_run})"
            elif details["name"] == "Train on SageMaker" and isinstance(output, dict):
                job = output.get("training_job") or {}
                note = f"  (training job {job.get('name')}: {job.get('status')})"
            elif details["name"] == PROMOTE_STATE and isinstance(output, dict):
                note = f"  ({(output.get('champion') or {}).get('reason')})"
            elif details["name"] == "Is the model good enough?" and isinstance(tasks, dict):
                note = f"  ({((tasks.get('train') or {}).get('gate') or {}).get('reason')})"
            elif isinstance(tasks, dict):
                task = tasks.get(TASK_STATES.get(details["name"], ""))
                if isinstance(task, dict):
                    note = f"  ({describe_state(task.get('state'))}: {task.get('target')})"
        return f"{stamp}  end    {details['name']}{note}"
    if kind in {"TaskFailed", "LambdaFunctionFailed"}:
        details = event.get("taskFailedEventDetails") or event.get("lambdaFunctionFailedEventDetails") or {}
        return f"{stamp}  error  {details.get('error')}"
    if kind in {"ExecutionFailed", "ExecutionSucceeded"}:
        return f"{stamp}  {kind}"
    return None


# What a task's state means, for the progress lines: the summary's four, and the plan's "pending".
STATE_MEANINGS = {
    "pending": "will run",
    "ran": "made its output",
    "present": "its output was already there",
    "failed": "failed",
    "not_run": "its output is missing but not needed",
}


def describe_state(state: Any) -> str:
    """``pending (will run)``: a task's state and, for the plan's ``pending``, what it means."""
    return f"{state} ({STATE_MEANINGS['pending']})" if state == "pending" else str(state)


class _RetrierTime:
    """Stands in for the ``time`` module inside moto's retrier: reports each retry and scales its ``sleep``.

    The retrier calls ``time.sleep(interval)`` once it decided to retry; ``_watch_retrier`` has put
    what it was evaluating (the retrier and the execution's environment) in ``current`` just before.
    """

    def __init__(self, scale: float, on_retry: Callable[[RetryNotice], None] | None) -> None:
        self.scale = scale
        self.on_retry = on_retry
        self.current = threading.local()

    def sleep(self, seconds: float) -> None:
        evaluating = getattr(self.current, "value", None)
        if self.on_retry and evaluating is not None:
            retrier, env, error = evaluating
            with contextlib.suppress(KeyError, AttributeError, TypeError):
                attempts = retrier.max_attempts
                self.on_retry(
                    RetryNotice(
                        state=str(env.states.context_object.context_object_data["State"]["Name"]),
                        error=str(getattr(error, "error_name", error)),
                        delay_seconds=seconds * self.scale,
                        # the attempt number it stored counts retries from 0; the first try was attempt 1
                        attempt=int(attempts._access_attempt_number(env)) + 2,
                        max_attempts=int(attempts.attempts) + 1,
                    )
                )
        time.sleep(seconds * self.scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextlib.contextmanager
def _retry_delays(scale: float, on_retry: Callable[[RetryNotice], None] | None = None) -> Iterator[None]:
    """Scale the state machine's Retry intervals and Wait states (tests use 0); report each retry to ``on_retry``."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    namespace = vars(retrier_decl)  # the retrier calls time.sleep() through its module global `time`
    original_time = namespace["time"]
    stand_in = _RetrierTime(scale, on_retry)
    retrier_class = retrier_decl.RetrierDecl
    original_eval = retrier_class._eval_body

    def eval_body(retrier: Any, env: Any) -> None:
        stand_in.current.value = (retrier, env, env.stack[-1] if env.stack else None)  # the error being matched
        try:
            original_eval(retrier, env)
        finally:
            stand_in.current.value = None

    original_wait = WaitFunction._wait_interval

    def wait_interval(function: Any, env: Any, wait_seconds: int) -> None:  # "Wait for the source"
        original_wait(function, env, int(wait_seconds * scale))

    namespace["time"] = stand_in
    retrier_class._eval_body = eval_body  # type: ignore[method-assign,assignment]
    WaitFunction._wait_interval = wait_interval  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        namespace["time"] = original_time
        retrier_class._eval_body = original_eval  # type: ignore[method-assign]
        WaitFunction._wait_interval = original_wait  # type: ignore[method-assign]


_listeners: set[threading.Event] = set()
_listeners_lock = threading.Lock()


def _notify_listeners() -> None:
    for listener in list(_listeners):
        listener.set()


@contextlib.contextmanager
def _history_notifications(changed: threading.Event) -> Iterator[None]:
    """Set ``changed`` whenever moto's interpreter adds an event to an execution's history.

    moto's ``EventManager.add_event`` is wrapped while at least one listener is registered, so
    executions followed from several threads at once each hear of every event.
    """
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

    with _listeners_lock:
        if not _listeners:
            original = EventManager.add_event

            def add_event(manager: Any, *args: Any, **kwargs: Any) -> int:
                event_id: int = original(manager, *args, **kwargs)
                _notify_listeners()
                return event_id

            add_event.original = original  # type: ignore[attr-defined]
            EventManager.add_event = add_event  # type: ignore[method-assign,assignment]
        _listeners.add(changed)
    try:
        yield
    finally:
        with _listeners_lock:
            _listeners.discard(changed)
            if not _listeners:
                EventManager.add_event = EventManager.add_event.original  # type: ignore[attr-defined,method-assign]


BACKFILL_ASL_PATH = REPO_ROOT / "statemachine" / "backfill.asl.json"
BACKFILL_REPORT_STATE = "Report the backfill"


class LocalBackfill:
    """The backfill state machine on moto, starting child executions of the pipeline's. Use inside ``local_aws()``.

    Both state machines are created as the template creates them: the backfill's definition gets
    the pipeline's ARN, the functions' ARNs and the default concurrency as its DefinitionSubstitutions.
    """

    def __init__(
        self,
        *,
        env: dict[str, str] | None = None,
        retry_delay_scale: float = 1.0,
        default_max_concurrency: int | None = None,
        asl_path: Path = BACKFILL_ASL_PATH,
        name: str = "mlpipe-local",
    ) -> None:
        self.pipeline = LocalPipeline(env=env, retry_delay_scale=retry_delay_scale, name=name)
        self.lambdas = self.pipeline.lambdas
        self.sfn = self.pipeline.sfn
        substitutions = {
            **SUBSTITUTIONS,
            "PipelineStateMachineArn": self.pipeline.state_machine_arn,
            "BackfillMaxConcurrency": str(default_max_concurrency or DEFAULT_MAX_CONCURRENCY),
        }
        definition = asl_path.read_text()
        for key, value in substitutions.items():
            definition = definition.replace("${" + key + "}", value)
        self.state_machine_arn = self.sfn.create_state_machine(
            name=f"{name}-backfill-{uuid.uuid4().hex[:8]}", definition=definition, roleArn=ROLE_ARN
        )["stateMachineArn"]

    def run(
        self, backfill_input: dict[str, Any], *, on_event: EventPrinter | None = None, timeout: float = 3600.0
    ) -> dict[str, Any]:
        """Start a backfill execution, wait for it and its children, and return the backfill's summary."""
        with (
            self.lambdas.active(),
            self.pipeline.training_jobs.active(),
            nested_executions(),
            _retry_delays(self.pipeline.retry_delay_scale),
        ):
            response = self.sfn.start_execution(
                stateMachineArn=self.state_machine_arn,
                name=f"backfill-{uuid.uuid4().hex[:12]}",
                input=json.dumps(backfill_input),
            )
            arn = str(response["executionArn"])
            self.pipeline.wait(arn, on_event=on_event, timeout=timeout)
            return self.summary(arn)

    def summary(self, execution_arn: str) -> dict[str, Any]:
        """The backfill's summary: its output, or the report step's when it failed; else the failure itself."""
        status = self.sfn.describe_execution(executionArn=execution_arn)
        if status["status"] == "SUCCEEDED":
            return dict(json.loads(status["output"]))
        for event in reversed(self.pipeline.history(execution_arn)):
            details = event.get("stateExitedEventDetails") or {}
            output = (
                json.loads(details.get("output") or "null") if details.get("name") == BACKFILL_REPORT_STATE else None
            )
            if isinstance(output, dict) and isinstance(
                output.get("summary"), dict
            ):  # not when it failed and was caught
                return dict(output["summary"])
        # Refused before any date started (InvalidRequestError), or the backfill's own steps failed.
        error = describe_error({"Error": status.get("error") or status["status"], "Cause": status.get("cause")})
        return {
            "status": "FAILED",
            "runs": [],
            "totals": {"ran": 0, "present": 0, "failed": 0},
            "error": {"task": "backfill", **error},
        }
