"""Run ``statemachine/pipeline.asl.json`` on this machine: moto's Step Functions interpreter executes it,
and every Lambda task runs the real handler in-process (see ``lambdas.py``).

``local_aws()`` opens the moto context; ``LocalPipeline`` creates the state machine (with the
same ``DefinitionSubstitutions`` names as template.yaml), starts executions, streams their history
and turns the end of an execution into the summary that ``pipeline run --json`` prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any, cast

from pipeline_local.lambdas import ACCOUNT, FUNCTIONS, REGION, REPO_ROOT, InProcessLambdas, function_arn, load_handler

ASL_PATH = REPO_ROOT / "statemachine" / "pipeline.asl.json"
SUBSTITUTIONS = {f"{name.capitalize()}FunctionArn": function_arn(name) for name in FUNCTIONS}
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/local-pipeline"
LOCAL_ENV = {"MLPIPE_ALLOW_LOCAL_STORAGE": "true", "MLPIPE_ALLOW_LOOPBACK_SOURCES": "true"}
EventPrinter = Callable[[dict[str, Any]], None]


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
    thread = threading.Thread(target=server.serve_forever, name="http-server", daemon=True)
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
        with _environment({**LOCAL_ENV, **(env or {})}):
            self.lambdas = InProcessLambdas({name: load_handler(name) for name in FUNCTIONS})
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
        self, execution_input: dict[str, Any], *, on_event: EventPrinter | None = None, timeout: float = 600.0
    ) -> dict[str, Any]:
        """Start an execution, wait for it, and return its summary."""
        with self.lambdas.active(), _retry_delays(self.retry_delay_scale):
            arn = self.start(execution_input)
            return self.wait(arn, on_event=on_event, timeout=timeout)

    def start(self, execution_input: dict[str, Any]) -> str:
        """Start an execution (the Lambda routing must be active) and return its ARN."""
        response = self.sfn.start_execution(
            stateMachineArn=self.state_machine_arn,
            name=f"run-{uuid.uuid4().hex[:12]}",
            input=json.dumps(execution_input),
        )
        return str(response["executionArn"])

    def wait(
        self, execution_arn: str, *, on_event: EventPrinter | None = None, timeout: float = 600.0
    ) -> dict[str, Any]:
        """Poll an execution until it ends, passing each new history event to ``on_event``; return the summary."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            status = self.sfn.describe_execution(executionArn=execution_arn)
            events = self.history(execution_arn)
            for event in events[seen:]:
                if on_event:
                    on_event(event)
            seen = len(events)
            if status["status"] != "RUNNING":
                return summary_from_execution(status)
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_arn} still running after {timeout}s")
            time.sleep(0.02)

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


def summary_from_execution(status: dict[str, Any]) -> dict[str, Any]:
    """The summary: an execution's output when it succeeded, its Cause (our JSON) when it failed."""
    from mlpipe.report import summary_from_failure

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
            if details["name"] == "Plan the run" and isinstance(output, dict):
                note = f"  (start at: {output.get('start_at')})"
            elif isinstance(tasks, dict):
                key = {"Download dataset": "download", "Train model": "train", "Publish model": "upload"}
                task = tasks.get(key.get(details["name"], ""))
                if isinstance(task, dict):
                    note = f"  ({task.get('state')}: {task.get('target')})"
        return f"{stamp}  end    {details['name']}{note}"
    if kind in {"TaskFailed", "LambdaFunctionFailed"}:
        details = event.get("taskFailedEventDetails") or event.get("lambdaFunctionFailedEventDetails") or {}
        return f"{stamp}  error  {details.get('error')}"
    if kind in {"ExecutionFailed", "ExecutionSucceeded"}:
        return f"{stamp}  {kind}"
    return None


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _ScaledTime:
    """Stands in for the ``time`` module inside moto's retrier, scaling its ``sleep``."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * self.scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextlib.contextmanager
def _retry_delays(scale: float) -> Iterator[None]:
    """Scale the state machine's Retry intervals (tests use 0; a normal run keeps them as written)."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    if scale == 1.0:
        yield
        return
    namespace = vars(retrier_decl)  # the retrier calls time.sleep() through its module global `time`
    original = namespace["time"]
    namespace["time"] = _ScaledTime(scale)
    try:
        yield
    finally:
        namespace["time"] = original


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
        from mlpipe.backfill import DEFAULT_MAX_CONCURRENCY

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
        from pipeline_local.nested import nested_executions

        with self.lambdas.active(), nested_executions(), _retry_delays(self.pipeline.retry_delay_scale):
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
        from mlpipe.report import describe_error

        # Refused before any date started (InvalidRequestError), or the backfill's own steps failed.
        error = describe_error({"Error": status.get("error") or status["status"], "Cause": status.get("cause")})
        return {
            "status": "FAILED",
            "runs": [],
            "totals": {"ran": 0, "present": 0, "failed": 0},
            "error": {"task": "backfill", **error},
        }
