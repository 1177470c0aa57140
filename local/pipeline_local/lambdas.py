"""Route moto's Lambda invocations to the real handlers in ``functions/*/app.py``, in this process.

moto's Step Functions interpreter (``execute_state_machine``) runs the ASL file for real and calls
Lambda through boto3; moto's Docker-less Lambda backend (``LambdaSimpleBackend``) would only echo
the payload back. ``InProcessLambdas`` replaces its ``invoke`` for as long as it is active, so
each Task state runs the handler with the state's payload, and an exception becomes a Lambda
function error (``errorType`` = class name), exactly what Retry and Catch match in AWS.

This reaches into moto's internals, so it is pinned: ``MOTO_SERIES`` below and the version in
requirements/run.txt move together, and tests/integration fails loudly if they drift.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

MOTO_SERIES = "5.2."
REPO_ROOT = Path(__file__).resolve().parents[2]
# One folder per function, each with its handler (template.yaml's CodeUri; tests/unit/test_template.py
# checks that the template, this list and the ASL name the same functions).
FUNCTIONS = tuple(sorted(path.parent.name for path in (REPO_ROOT / "functions").glob("*/app.py")))
REGION = "us-east-1"
ACCOUNT = "123456789012"

Handler = Callable[[Any, Any], Any]


def function_arn(name: str) -> str:
    """The ARN the local state machine uses for function ``name``."""
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def check_moto_version() -> None:
    """RuntimeError unless the installed moto is of MOTO_SERIES, the series this package patches."""
    import moto

    if not moto.__version__.startswith(MOTO_SERIES):
        raise RuntimeError(
            f"pipeline_local is written against moto {MOTO_SERIES}x, found "
            f"{moto.__version__}; pin moto in requirements/dev.txt or update lambdas.py and nested.py"
        )


def load_handler(name: str, root: Path = REPO_ROOT) -> Handler:
    """Import ``functions/<name>/app.py`` afresh (so its settings are read from the current environment)."""
    path = root / "functions" / name / "app.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run the pipeline from a checkout of the repository (pip install -e .)"
        )
    spec = importlib.util.spec_from_file_location(f"mlpipe_function_{name}_{uuid.uuid4().hex}", path)
    assert spec
    assert spec.loader
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Handler = module.lambda_handler
    return handler


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 1024
    timeout_seconds: float = 900.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return function_arn(self.function_name)

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


def error_payload(exc: BaseException) -> dict[str, Any]:
    """The payload Lambda's Python runtime returns for an unhandled exception."""
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": str(uuid.uuid4()),
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


class InProcessLambdas:
    """While active, moto's Lambda invocations run ``handlers[function_name](event, context)``."""

    def __init__(self, handlers: dict[str, Handler], on_invoke: Callable[[str, Any, Any], None] | None = None):
        self.handlers = handlers
        self.on_invoke = on_invoke
        self.invocations: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def invoke(self, function_name: str, payload: Any) -> tuple[bytes, bool]:
        """Run one invocation; return the JSON response and whether it is a function error."""
        name = function_name
        if ":function:" in function_name:  # an ARN, possibly with a qualifier
            name = function_name.split(":function:", 1)[1].split(":", 1)[0]
        handler = self.handlers.get(name)
        if handler is None:
            raise KeyError(f"no local handler for Lambda function {function_name!r}")
        event = json.loads(payload) if isinstance(payload, str | bytes) and payload else payload or {}
        with self._lock:
            self.invocations.append((name, event))
        try:
            result = handler(event, LambdaContext(name))
            error = False
        except Exception as exc:  # the Lambda runtime turns any exception into a function error
            result = error_payload(exc)
            error = True
        except BaseException as exc:  # the process died (SystemExit, a signal): Lambda reports an exit error
            result = error_payload(exc) | {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"the function's process exited: {exc!r}",
            }
            error = True
        if self.on_invoke:
            self.on_invoke(name, event, result)
        return json.dumps(result).encode(), error

    @contextlib.contextmanager
    def active(self) -> Iterator[InProcessLambdas]:
        """Patch moto's Docker-less Lambda backend for the duration of the block."""
        from moto.awslambda_simple.models import LambdaSimpleBackend

        check_moto_version()
        router = self

        def invoke(
            backend: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
        ) -> bytes:
            payload, error = router.invoke(function_name, body)
            if error:
                response_headers["x-amz-function-error"] = "Unhandled"
            return payload

        original = LambdaSimpleBackend.invoke
        LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            LambdaSimpleBackend.invoke = original  # type: ignore[method-assign]
