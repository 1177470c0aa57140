"""TrainOn=sagemaker through the real ASL on moto: the SageMaker task routed in-process, against moto's S3."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from mlpipe import champion
from mlpipe.sagemaker import IMAGE_TAG, JOB_NAME_PATTERN
from mlpipe.steps import TASKS
from mlpipe.storage import Store
from pipeline_local.runner import LocalPipeline
from tests.conftest import ARTIFACTS, MODELS, s3_keys
from tests.integration.conftest import DATASET_KEY, METRICS_KEY, MODEL_KEY, PUBLISHED_KEY, run_keys, states

Input = Callable[..., dict[str, Any]]


@pytest.fixture
def on_sagemaker(aws: Any) -> LocalPipeline:
    """The state machine of a TrainOn=sagemaker deployment (the plan's TRAIN_ON), Retry intervals scaled to zero."""
    return LocalPipeline(env={"TRAIN_ON": "sagemaker"}, retry_delay_scale=0.0)


def test_a_sagemaker_run_trains_in_the_job_and_publishes_as_a_lambda_run_does(
    aws: Any, on_sagemaker: LocalPipeline, run_input: Input
) -> None:
    summary = on_sagemaker.run(run_input())
    assert summary["status"] == "SUCCEEDED", summary["error"]
    assert states(summary) == dict.fromkeys(TASKS, "ran")
    (request,) = on_sagemaker.training_jobs.requests
    job = request["TrainingJobName"]
    assert summary["tasks"]["train"] == {"state": "ran", "target": f"s3://{ARTIFACTS}/{MODEL_KEY}", "training_job": job}
    assert summary["gate"]["passed"] is True
    assert summary["champion"]["promoted"] is True
    # the same targets as a Lambda run: the model and its card at the model target, the published model
    keys = s3_keys(aws, ARTIFACTS)
    assert {DATASET_KEY, MODEL_KEY, METRICS_KEY} <= set(keys)
    assert PUBLISHED_KEY in s3_keys(aws, MODELS)
    card = json.loads(aws.get_object(Bucket=ARTIFACTS, Key=METRICS_KEY)["Body"].read())
    assert card["dataset"]["uri"] == f"s3://{ARTIFACTS}/{DATASET_KEY}"
    assert card["lineage"]["training_job"] == job
    assert card["data_profile"]["rows"] == 150  # the download's profile, so the champion gets its data contract
    assert champion.read_champion(f"s3://{MODELS}/iris/iris", store=Store.on_this_machine())["contract"] is not None
    # and beside them, SageMaker's own output and the staged code
    assert f"sagemaker/output/{job}/output/model.tar.gz" in keys
    assert [k for k in keys if k.startswith("sagemaker/code/")] == [
        request["HyperParameters"]["sagemaker_submit_directory"].split("/", 3)[3]
    ]
    # the train function ran once, after the job, and only read the card
    assert [name for name, _ in on_sagemaker.lambdas.invocations].count("train") == 1


def test_the_training_job_request_carries_the_run_and_the_deployments_settings(
    aws: Any, on_sagemaker: LocalPipeline, run_input: Input
) -> None:
    on_sagemaker.run(run_input(hyperparameters={"C": 2.0}, cv_folds=3))
    (request,) = on_sagemaker.training_jobs.requests
    name = request["TrainingJobName"]
    model_id = run_keys(hyperparameters={"C": 2.0}, cv_folds=3)["model"].split("/")[-2]
    assert JOB_NAME_PATTERN.fullmatch(name)
    assert len(name) <= 63
    assert name.startswith(f"mlpipe-{model_id.removeprefix('model-')}-")  # locally the prefix is "mlpipe"
    assert name.endswith("-0")  # the retry count: the first attempt
    assert request["AlgorithmSpecification"] == {
        "TrainingImage": f"683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:{IMAGE_TAG}",
        "TrainingInputMode": "File",
    }
    assert request["RoleArn"].endswith(":role/local-sagemaker")
    dataset_uri = f"s3://{ARTIFACTS}/{run_keys(hyperparameters={'C': 2.0}, cv_folds=3)['dataset']}"
    (channel,) = request["InputDataConfig"]
    assert channel["ChannelName"] == "train"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == dataset_uri
    assert channel["DataSource"]["S3DataSource"]["S3DataType"] == "S3Prefix"
    assert request["OutputDataConfig"] == {"S3OutputPath": f"s3://{ARTIFACTS}/sagemaker/output"}
    assert request["ResourceConfig"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30}
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    hyper = request["HyperParameters"]
    assert all(isinstance(value, str) for value in hyper.values())  # SageMaker takes a map of strings
    assert hyper["sagemaker_program"] == "train.py"
    assert hyper["sagemaker_submit_directory"].startswith(f"s3://{ARTIFACTS}/sagemaker/code/sourcedir-")
    assert hyper["dataset_uri"] == dataset_uri
    assert hyper["model_uri"] == f"s3://{ARTIFACTS}/{run_keys(hyperparameters={'C': 2.0}, cv_folds=3)['model']}"
    assert (hyper["estimator"], hyper["cv_folds"], hyper["max_runtime_seconds"]) == ("svc", "3", "3600")
    assert json.loads(base64.b64decode(hyper["hyperparameters"]))["C"] == 2.0
    assert json.loads(base64.b64decode(hyper["identity"]))["identity"] == model_id
    assert json.loads(base64.b64decode(hyper["dataset"]))["label_column"] == -1
    assert hyper["execution_id"].startswith("arn:aws:states:us-east-1:")


def test_a_rerun_on_sagemaker_creates_no_job(aws: Any, on_sagemaker: LocalPipeline, run_input: Input) -> None:
    on_sagemaker.run(run_input())
    summary = on_sagemaker.run(run_input())
    assert states(summary) == dict.fromkeys(TASKS, "present")
    assert len(on_sagemaker.training_jobs.requests) == 1


def test_the_lambda_deployment_never_creates_a_training_job(
    aws: Any, pipeline: LocalPipeline, run_input: Input
) -> None:
    summary = pipeline.run(run_input())
    assert states(summary) == dict.fromkeys(TASKS, "ran")
    assert "training_job" not in summary["tasks"]["train"]
    assert pipeline.training_jobs.requests == []
    assert not [k for k in s3_keys(aws, ARTIFACTS) if k.startswith("sagemaker/")]


def test_a_failed_job_fails_the_run_with_its_reason_and_a_rerun_resumes_at_train(
    aws: Any, on_sagemaker: LocalPipeline, run_input: Input
) -> None:
    # Given hyperparameters that pass the plan but that scikit-learn refuses when fitting, in the job
    bad = {"break_ties": True, "decision_function_shape": "ovo"}
    failed = on_sagemaker.run(run_input(hyperparameters=bad))
    assert failed["status"] == "FAILED"
    assert failed["error"]["task"] == "train"
    assert failed["error"]["type"] == "InvalidHyperparametersError"  # named from the job's FailureReason
    assert failed["error"]["message"].startswith("SageMaker training job mlpipe-")
    assert "ended Failed: AlgorithmError: InvalidHyperparametersError:" in failed["error"]["message"]
    assert states(failed) == {"download": "ran", "train": "failed", "upload": "not_run"}
    assert run_keys(hyperparameters=bad)["model"] not in s3_keys(aws, ARTIFACTS)
    # When the cause is fixed and the date runs again, the dataset is reused and a new job (new name) trains
    fixed = on_sagemaker.run(run_input())
    assert fixed["status"] == "SUCCEEDED"
    assert states(fixed) == {"download": "present", "train": "ran", "upload": "ran"}
    first, second = (r["TrainingJobName"] for r in on_sagemaker.training_jobs.requests)
    assert first != second
