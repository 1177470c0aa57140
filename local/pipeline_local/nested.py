"""Let moto's interpreter run ``arn:aws:states:::states:startExecution.sync:2`` as AWS does.

moto 5.2's copy of the interpreter (from LocalStack) leaves out the step that maps a service
integration's parameters to boto3's and its response back to Step Functions' spelling
(``StateTaskService._normalise_parameters`` and ``_normalise_response`` do nothing). For the
``states`` integration that breaks the task outright (boto3 is called with ``StateMachineArn``, and
the resolver then reads ``ExecutionArn`` from a response that says ``executionArn``). While
``nested_executions()`` is active, the integration does what AWS does:

- ``StartExecution`` gets boto3's names (``stateMachineArn``, ``input``, ``name``) and, like AWS
  when ``Name`` is left out, a UUID as the child execution's name;
- the responses use the API's own names (``ExecutionArn``, ``Status``, ``Output``, ``Error``,
  ``Cause``, ...) with timestamps as epoch milliseconds, so a child's result is ``$.Output`` and a
  failed child's Cause (``States.TaskFailed``) is its DescribeExecution response as JSON whose
  ``Cause`` is the child's own Cause, as in AWS.

Pinned with ``lambdas.MOTO_SERIES``: check this module when moto moves.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

from pipeline_local.lambdas import check_moto_version


def _boto_parameters(self: Any, parameters: dict[str, Any], *args: Any, **kwargs: Any) -> None:
    _ORIGINAL["parameters"](self, parameters, *args, **kwargs)  # serialises Input to a JSON string
    for key in list(parameters):
        parameters[key[:1].lower() + key[1:]] = parameters.pop(key)
    parameters.setdefault("name", str(uuid.uuid4()))


def _sfn_response(self: Any, response: Any, *args: Any, **kwargs: Any) -> None:
    if not isinstance(response, dict):
        return
    for key in list(response):
        value = response.pop(key)
        if isinstance(value, dt.datetime):
            value = int(value.timestamp() * 1000)
        response[key[:1].upper() + key[1:]] = value


_ORIGINAL: dict[str, Any] = {}


@contextlib.contextmanager
def nested_executions() -> Iterator[None]:
    """Patch moto's ``states`` service integration for the duration of the block (see the module's docstring)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_sfn

    check_moto_version()
    service = state_task_service_sfn.StateTaskServiceSfn
    if _ORIGINAL:  # already active (nested use): the patch is class-wide
        yield
        return
    _ORIGINAL["parameters"] = service._normalise_parameters
    _ORIGINAL["response"] = service._normalise_response
    setattr(service, "_normalise_parameters", _boto_parameters)  # noqa: B010 - a method, patched on the class
    setattr(service, "_normalise_response", _sfn_response)  # noqa: B010
    try:
        yield
    finally:
        setattr(service, "_normalise_parameters", _ORIGINAL.pop("parameters"))  # noqa: B010
        setattr(service, "_normalise_response", _ORIGINAL.pop("response"))  # noqa: B010
