"""The registry of steps (mlpipe.steps) is the pipeline's shape: the ASL and the template must say the same."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mlpipe import steps
from mlpipe.config import Run
from mlpipe.steps import GATE, GATE_FAILED_STATE, OUTPUTS, STEPS, TASKS
from tests.cfn import asl, asl_text, template
from tests.conftest import REPO

PLAN_CHOICE = "Start at the first missing task"


def lambda_tasks(definition: dict[str, Any]) -> dict[str, str]:
    """Each Task state that invokes a Lambda function, to the function's template resource (from its placeholder)."""
    found = {}
    for name, state in definition["States"].items():
        if state.get("Type") == "Task" and state["Resource"].endswith(":lambda:invoke"):
            placeholder = state["Parameters"]["FunctionName"]
            found[name] = placeholder.removesuffix("Arn")
    return found


def test_every_lambda_task_state_is_a_registered_step_and_the_other_way_round() -> None:
    in_asl = lambda_tasks(asl_raw())
    assert set(in_asl) == set(steps.state_to_step())
    for state, resource in in_asl.items():
        assert resource == steps.step(steps.state_to_step()[state]).resource, state


def test_each_task_writes_its_result_where_the_plan_and_the_report_read_it() -> None:
    states = asl_raw()["States"]
    for task in TASKS:
        for state in steps.step(task).states:
            assert states[state]["ResultPath"] == f"$.tasks.{task}", state


def test_the_plans_choice_leads_to_each_task_and_promote() -> None:
    choice = asl_raw()["States"][PLAN_CHOICE]
    values = [rule["StringEquals"] for rule in choice["Choices"] if rule["Variable"] == "$.start_at"]
    # "wait": the source is not there yet; "ignore": an upload that is not the source (mlpipe.tasks.plan)
    assert values == [*TASKS, "promote", "wait", "ignore"]


def test_each_catch_names_the_step_that_failed() -> None:
    states = asl_raw()["States"]
    failed = {name: state["Result"] for name, state in states.items() if state.get("ResultPath") == "$.failed_task"}
    expected = {step.failed_state: step.name for step in STEPS if step.failed_state} | {GATE_FAILED_STATE: GATE}
    assert failed == expected
    for step in STEPS:
        for state in step.states:
            catches = {catch["Next"] for catch in states[state].get("Catch", [])}
            replan = {"Source changed: plan again"} if step.name == "download" else set()  # a new version: plan again
            assert catches == ({step.failed_state} if step.failed_state else set()) | replan, state


def test_the_template_has_exactly_the_registered_functions_each_with_its_folder() -> None:
    functions = {
        name: resource["Properties"]["CodeUri"]
        for name, resource in template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert functions == {step.resource: f"functions/{step.function}/" for step in STEPS}
    for step in STEPS:
        assert (REPO / "functions" / step.function / "app.py").is_file()


def test_each_step_needs_fields_of_the_run_and_each_output_is_one() -> None:
    fields = set(Run.__dataclass_fields__)
    for step in STEPS:
        assert set(step.needs) <= fields, step.name
    for output in OUTPUTS.values():
        assert output.field in fields


def test_the_task_handlers_take_their_needs_from_the_registry() -> None:
    for step in STEPS:
        if step.needs:
            source = (REPO / "functions" / step.function / "app.py").read_text()
            assert f'STEP = step("{step.name}")' in source, step.name
            assert "needs=STEP.needs" in source, step.name


def test_an_unknown_step_is_named_with_the_steps_there_are() -> None:
    with pytest.raises(KeyError, match="the steps are plan, download, train, upload, promote, report"):
        steps.step("deploy")


def asl_raw() -> dict[str, Any]:
    """The definition with each placeholder standing for its own name (a number, where the ASL wants one, as 0)."""
    placeholders = set(re.findall(r"\$\{(\w+)\}", asl_text()))
    numbers = {name for name in placeholders if re.search(r":\s*\$\{" + name + r"\}", asl_text())}
    return asl({name: f"{name}" for name in placeholders} | dict.fromkeys(numbers, "0"))
