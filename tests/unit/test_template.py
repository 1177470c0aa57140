"""template.yaml, the ASL file and the code agree with each other; cfn-lint finds nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlpipe import exceptions
from mlpipe.backfill import DEFAULT_MAX_CONCURRENCY
from mlpipe.config import Settings, resolve_run
from mlpipe.sagemaker import IMAGE_REPOSITORY, IMAGE_TAG
from pipeline_local.runner import SUBSTITUTIONS as SUBSTITUTIONS_OF_THE_RUNNER
from tests.cfn import asl, asl_text, template
from tests.conftest import REPO


def test_cfn_lint_reports_nothing() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(REPO / "template.yaml")],
        capture_output=True,
        text=True,
        check=False,
        env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_definition_substitutions_match_the_asl_placeholders() -> None:
    machine = template()["Resources"]["PipelineStateMachine"]["Properties"]
    placeholders = set(re.findall(r"\$\{(\w+)\}", asl_text()))
    assert set(machine["DefinitionSubstitutions"]) == placeholders


def test_every_function_code_uri_has_a_handler() -> None:
    for name, resource in template()["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            app = REPO / resource["Properties"]["CodeUri"] / "app.py"
            assert "def lambda_handler(" in app.read_text(), name


def test_retried_errors_are_exactly_the_retryable_exceptions() -> None:
    retried = {
        error
        for state in asl()["States"].values()
        for retry in state.get("Retry", [])
        for error in retry["ErrorEquals"]
        if not error.startswith(("Lambda.", "States.", "SageMaker."))
    }
    states = asl()["States"]
    # Tried again by planning again: a changed source (a Catch back to the plan), a source not there yet (the wait)
    retried |= {
        error
        for state in states.values()
        for catch in state.get("Catch", [])
        if catch["Next"] == "Source changed: plan again"
        for error in catch["ErrorEquals"]
    }
    assert states["Wait for the source"]["Next"] == "Plan again"
    retried.add("SourceNotReadyError")
    retryable = {
        name
        for name, cls in vars(exceptions).items()
        if isinstance(cls, type) and issubclass(cls, exceptions.PipelineError) and cls.retryable
    }
    assert retried == retryable


def test_every_retry_has_backoff_and_jitter_and_every_task_a_catch() -> None:
    for name, state in asl()["States"].items():
        if state["Type"] != "Task":
            continue
        for retry in state["Retry"]:
            assert retry["BackoffRate"] > 1, name
            assert retry["JitterStrategy"] == "FULL", name
            assert retry["IntervalSeconds"] >= 1, name
            assert retry["MaxAttempts"] >= 2, name
        if name != "Report the run":
            assert state["Catch"][-1]["ErrorEquals"] == ["States.ALL"], name  # ASL: States.ALL comes last


def test_the_template_defaults_are_valid_settings() -> None:
    parameters = template()["Parameters"]
    env = {
        "SOURCE_URL": parameters["SourceUrl"]["Default"],
        "ESTIMATOR": parameters["Estimator"]["Default"],
        "HYPERPARAMETERS": parameters["Hyperparameters"]["Default"],
        "DATASET_DESCRIPTION": parameters["DatasetDescription"]["Default"],
        "CV_FOLDS": str(parameters["CvFolds"]["Default"]),
        "MAX_SOURCE_BYTES": str(parameters["MaxSourceBytes"]["Default"]),
        "TIMEZONE": parameters["ScheduleTimezone"]["Default"],
        "ARTIFACT_ROOT": "s3://bucket/artifacts",
        "PUBLISH_URI": "s3://bucket/iris-svm",
    }
    assert set(env) <= set(template()["Globals"]["Function"]["Environment"]["Variables"])
    settings = Settings.from_env(env)
    assert settings.cv_folds == 5
    assert settings.estimator == "svc"
    assert not settings.allow_local_storage
    assert not settings.allow_loopback_sources


def test_schedule_input_is_an_input_the_plan_accepts() -> None:
    event = template()["Resources"]["PipelineStateMachine"]["Properties"]["Events"]["Daily"]["Properties"]
    scheduled = json.loads(event["Input"].replace("<aws.scheduler.scheduled-time>", "2026-11-25T03:00:00Z"))
    assert scheduled == json.loads((REPO / "events" / "schedule.json").read_text())
    settings = Settings(artifact_root="s3://a-bucket/artifacts", publish_uri="s3://m-bucket/iris", timezone="UTC")
    assert resolve_run(scheduled, settings).run_date == "2026-11-25"


def _retry_waits(retry: dict[str, Any]) -> float:
    """The longest total wait a Retry block can add: each interval before jitter, capped by MaxDelaySeconds."""
    cap = retry.get("MaxDelaySeconds", float("inf"))
    return sum(min(retry["IntervalSeconds"] * retry["BackoffRate"] ** n, cap) for n in range(retry["MaxAttempts"]))


# What a SageMaker job adds to its MaxRuntimeInSeconds at most: provisioning the instance, pulling the image,
# the channel's download and SageMaker's upload of its output (minutes each).
SAGEMAKER_OVERHEAD_SECONDS = 900
# The states each deployment's runs never enter: the Choice "Train where?" takes one branch.
OTHER_BRANCH = {"lambda": {"Train on SageMaker", "Read the trained model's card"}, "sagemaker": {"Train model"}}


def worst_case_execution_seconds(train_on: str = "lambda") -> float:
    """Every Task state of the branch (a run passes each at most once: the Choices only go forward), each attempt
    its Retry blocks allow taking the function's whole Timeout, plus every backoff at its longest (full jitter only
    shortens them). The SageMaker task is one job's MaxRuntimeInSeconds and overhead plus the backoffs: what it
    retries is an API error, raised when the job was not created or did not start."""
    resources = template()["Resources"]
    parameters = template()["Parameters"]
    substitutions = resources["PipelineStateMachine"]["Properties"]["DefinitionSubstitutions"]
    default_timeout = template()["Globals"]["Function"]["Timeout"]
    # Each placeholder stands for its own name (a number for the integers), so a Task names its function's ARN key.
    numbers = {
        "ExecutionTimeoutSeconds",
        "SageMakerInstanceCount",
        "SageMakerVolumeSizeGB",
        "SageMakerMaxRuntimeSeconds",
    }
    definition = asl({key: key for key in substitutions} | dict.fromkeys(numbers, "0"))
    total = 0.0
    for name, state in definition["States"].items():
        if state["Type"] != "Task" or name in OTHER_BRANCH[train_on]:
            continue
        retries = state.get("Retry", [])
        if state["Resource"].startswith("arn:aws:states:::sagemaker:"):
            runtime = parameters["SageMakerMaxRuntimeSeconds"]["Default"] + SAGEMAKER_OVERHEAD_SECONDS
            total += runtime + sum(_retry_waits(retry) for retry in retries)
            continue
        function = substitutions[state["Parameters"]["FunctionName"]]["GetAtt"].removesuffix(".Arn")
        timeout = resources[function]["Properties"].get("Timeout", default_timeout)
        attempts = 1 + sum(retry["MaxAttempts"] for retry in retries)
        total += attempts * timeout + sum(_retry_waits(retry) for retry in retries)
        assert timeout <= 900, name  # Lambda's limit, so no attempt can take longer than its Timeout
    return total


def test_the_execution_times_out_after_the_worst_case_of_its_tasks() -> None:
    # One default for both deployments: the SageMaker branch's worst case, the longer one (by the job's runtime).
    worst = max(worst_case_execution_seconds("lambda"), worst_case_execution_seconds("sagemaker"))
    assert worst == worst_case_execution_seconds("sagemaker")
    parameter = template()["Parameters"]["ExecutionTimeoutSeconds"]
    assert parameter["Default"] >= worst
    assert parameter["Default"] < worst + 300, "a default far above the worst case delays the alarm"
    substitutions = template()["Resources"]["PipelineStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert substitutions["ExecutionTimeoutSeconds"] == {"Ref": "ExecutionTimeoutSeconds"}
    assert '"TimeoutSeconds": ${ExecutionTimeoutSeconds},' in asl_text()  # unquoted: an integer once substituted
    assert asl()["TimeoutSeconds"] == 3600  # the local runner's value


def test_no_state_has_a_timeout_of_its_own() -> None:
    # A Task's own TimeoutSeconds would cut a retrying task short of its Retry blocks' budget.
    assert all("TimeoutSeconds" not in state for state in asl()["States"].values())


def backfill_asl() -> dict[str, Any]:
    return dict(json.loads((REPO / "statemachine" / "backfill.asl.json").read_text()))


def _all_states(states: dict[str, Any]) -> dict[str, Any]:
    """Every state, the Map's item processor's included."""
    found = dict(states)
    for state in states.values():
        if "ItemProcessor" in state:
            found |= _all_states(state["ItemProcessor"]["States"])
    return found


def test_backfill_substitutions_match_its_placeholders() -> None:
    machine = template()["Resources"]["BackfillStateMachine"]["Properties"]
    placeholders = set(re.findall(r"\$\{(\w+)\}", (REPO / "statemachine" / "backfill.asl.json").read_text()))
    assert set(machine["DefinitionSubstitutions"]) == placeholders
    assert machine["DefinitionSubstitutions"]["PipelineStateMachineArn"] == {"Ref": "PipelineStateMachine"}
    assert machine["DefinitionSubstitutions"]["BackfillMaxConcurrency"] == {"Ref": "BackfillMaxConcurrency"}


def test_backfill_default_concurrency_is_the_domain_default() -> None:

    assert template()["Parameters"]["BackfillMaxConcurrency"]["Default"] == DEFAULT_MAX_CONCURRENCY
    assert template()["Outputs"]["BackfillStateMachineArn"]["Value"] == {"Ref": "BackfillStateMachine"}


def test_every_backfill_task_retries_transient_errors_and_catches_everything() -> None:
    tasks = {name: state for name, state in _all_states(backfill_asl()["States"]).items() if state["Type"] == "Task"}
    assert set(tasks) == {"Expand the dates", "Run the pipeline for the date", "Report the backfill"}
    for name, state in tasks.items():
        assert state["Retry"], name
        for retry in state["Retry"]:
            assert retry["BackoffRate"] > 1, name
            assert retry["JitterStrategy"] == "FULL", name
            assert retry["IntervalSeconds"] >= 1, name
            assert retry["MaxAttempts"] >= 2, name
            # A child that ran and failed (States.TaskFailed) or a refused request is not retried.
            assert all(error.startswith(("Lambda.", "StepFunctions.")) for error in retry["ErrorEquals"]), name
        assert state["Catch"][0]["ErrorEquals"] == ["States.ALL"], name


def test_backfill_map_takes_its_concurrency_from_the_expanded_request() -> None:
    states = backfill_asl()["States"]
    (map_state,) = [state for state in states.values() if state["Type"] == "Map"]
    assert map_state["MaxConcurrencyPath"] == "$.max_concurrency"
    assert map_state["ItemsPath"] == "$.runs"
    assert states["Backfill failed"] == states["Backfill failed"] | {"Type": "Fail", "Error": "BackfillFailed"}


def test_the_sagemaker_task_gets_the_deployments_job_settings() -> None:

    substitutions = template()["Resources"]["PipelineStateMachine"]["Properties"]["DefinitionSubstitutions"]
    for name in ("InstanceType", "InstanceCount", "VolumeSizeGB", "MaxRuntimeSeconds"):
        assert substitutions[f"SageMaker{name}"] == {"Ref": f"SageMaker{name}"}
    image = json.dumps(substitutions["SageMakerImageUri"])
    assert f"/{IMAGE_REPOSITORY}:{IMAGE_TAG}" in image
    assert "ScikitLearnImageRegistry" in image
    assert SUBSTITUTIONS_OF_THE_RUNNER["SageMakerImageUri"].endswith(f"/{IMAGE_REPOSITORY}:{IMAGE_TAG}")
    registries = template()["Mappings"]["ScikitLearnImageRegistry"]
    assert registries["us-east-1"] == {"Account": "683313688378"}
    assert len(registries) >= 20
    parameters = template()["Parameters"]
    assert parameters["TrainOn"]["Default"] == "lambda"
    assert parameters["TrainOn"]["AllowedValues"] == ["lambda", "sagemaker"]
    for name in ("InstanceType", "InstanceCount", "VolumeSizeGB", "MaxRuntimeSeconds"):
        default = str(parameters[f"SageMaker{name}"]["Default"])
        assert SUBSTITUTIONS_OF_THE_RUNNER[f"SageMaker{name}"] == default  # the local runner uses the defaults
    task = asl()["States"]["Train on SageMaker"]
    assert task["Resource"] == "arn:aws:states:::sagemaker:createTrainingJob.sync"
    assert task["Catch"][0]["Next"] == "Training failed"
    assert asl()["States"]["Train where?"]["Choices"][0]["Variable"] == "$.run.train_on"


def test_both_trainings_lead_to_the_gate() -> None:
    states = asl()["States"]
    assert states["Train model"]["Next"] == "Is the model good enough?"
    assert states["Train on SageMaker"]["Next"] == "Read the trained model's card"
    card = states["Read the trained model's card"]
    assert card["Next"] == "Is the model good enough?"
    assert card["Parameters"] == states["Train model"]["Parameters"]  # the train function, with the run
    assert card["ResultSelector"]["state"] == "ran"  # the job ran; the function only read its card
