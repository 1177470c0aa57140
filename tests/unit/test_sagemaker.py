"""The SageMaker job alone: its name, its source archive, its entry point under the container's contract."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from mlpipe.config import Run, Settings, resolve_run
from mlpipe.exceptions import InvalidRequestError, MissingInputError
from mlpipe.report import describe_error
from mlpipe.sagemaker import (
    JOB_NAME_PATTERN,
    encode_object,
    source_archive,
    stage_source,
    training_job_name,
)
from mlpipe.sagemaker_job import main
from mlpipe.storage import Store
from mlpipe.tasks import train
from pipeline_local.sagemaker import to_cmd_args
from tests.conftest import REPO, SAMPLE

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:mlpipe-pipeline:run-1"


def test_the_job_name_is_valid_unique_per_execution_and_leaves_room_for_the_retry_count() -> None:
    name = training_job_name("mlpipe-dev", "model-2750d0e43f79", EXECUTION)
    assert re.fullmatch(r"mlpipe-dev-2750d0e43f79-[0-9a-f]{8}", name)
    assert name == training_job_name("mlpipe-dev", "model-2750d0e43f79", EXECUTION)  # a retry: the same base
    assert name != training_job_name("mlpipe-dev", "model-2750d0e43f79", EXECUTION + "-rerun")
    longest = training_job_name("m" * 38, "model-2750d0e43f79", EXECUTION)
    assert len(longest + "-99") == 63
    assert JOB_NAME_PATTERN.fullmatch(longest + "-99")
    with pytest.raises(InvalidRequestError, match="at most 38 characters"):
        training_job_name("m" * 39, "model-2750d0e43f79", EXECUTION)
    with pytest.raises(InvalidRequestError):
        training_job_name("my_stack", "model-2750d0e43f79", EXECUTION)


def test_the_run_names_the_job_only_when_it_trains_on_sagemaker() -> None:
    execution_input = {
        "run_date": "2026-11-25",
        "artifact_root": "s3://a-bucket/artifacts",
        "publish_uri": "s3://m-bucket/x",
    }
    run = resolve_run(execution_input, Settings(), execution_id=EXECUTION)
    assert (run.train_on, run.training_job, run.training_output_uri) == ("lambda", None, None)
    settings = Settings(train_on="sagemaker", training_job_prefix="mlpipe-prod")
    run = resolve_run(execution_input, settings, execution_id=EXECUTION)
    assert run.training_job == training_job_name("mlpipe-prod", run.identities["train"]["identity"], EXECUTION)
    assert run.training_output_uri == "s3://a-bucket/sagemaker/output"
    assert resolve_run(execution_input, Settings()).model_uri == run.model_uri  # where it trains is no identity


def test_a_description_too_long_for_a_sagemaker_hyperparameter_is_refused_by_the_plan() -> None:
    # Given a description naming 150 feature columns: fine on Lambda, over SageMaker's 2,500 characters
    columns = [f"measurement_{i:03d}" for i in range(150)]
    execution_input = {
        "run_date": "2026-11-25",
        "artifact_root": "s3://a-bucket/artifacts",
        "publish_uri": "s3://m-bucket/x",
        "dataset": {"label_column": "label", "feature_columns": columns},
    }
    assert resolve_run(execution_input, Settings(), execution_id=EXECUTION).train_on == "lambda"
    settings = Settings(train_on="sagemaker", training_job_prefix="mlpipe-prod")
    with pytest.raises(InvalidRequestError, match=r"the dataset description is \d+ characters .* more than the 2500"):
        resolve_run(execution_input, settings, execution_id=EXECUTION)
    # and one of 20 columns goes through
    execution_input["dataset"] = {"label_column": "label", "feature_columns": columns[:20]}
    assert resolve_run(execution_input, settings, execution_id=EXECUTION).training_job


def test_the_source_archive_is_reproducible_and_self_contained() -> None:
    payload = source_archive()
    assert payload == source_archive()
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as tar:
        names = tar.getnames()
        script = tar.extractfile("train.py").read().decode()  # type: ignore[union-attr]
        requirements = tar.extractfile("requirements.txt").read().decode()  # type: ignore[union-attr]
        assert {info.mtime for info in tar.getmembers()} == {0}
    assert names[:2] == ["train.py", "requirements.txt"]
    assert "mlpipe/sagemaker.py" in names
    assert "mlpipe/estimator_constraints.json" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "from mlpipe.sagemaker_job import main" in script
    assert "scikit-learn==1.9.1" in requirements


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_the_jobs_requirements_are_the_ml_layers_pins_and_boto3s() -> None:
    wanted = _pins(REPO / "layers" / "core" / "python" / "mlpipe" / "sagemaker_requirements.txt")
    layer = _pins(REPO / "layers" / "ml" / "requirements.txt")
    run = _pins(REPO / "requirements" / "run.txt")
    assert layer.items() <= wanted.items()
    assert set(wanted) - set(layer) == {"boto3", "botocore", "s3transfer"}
    assert all(run[name] == version for name, version in wanted.items())


def test_the_code_is_staged_once_under_its_hash(tmp_path: Path) -> None:
    uri = stage_source(str(tmp_path), store=Store.on_this_machine())
    path = Path(uri.removeprefix("file://"))
    assert re.fullmatch(r"sourcedir-[0-9a-f]{16}\.tar\.gz", path.name)
    assert path.parent == tmp_path / "code"
    before = path.stat().st_mtime_ns
    assert stage_source(str(tmp_path), store=Store.on_this_machine()) == uri
    assert path.stat().st_mtime_ns == before  # present: not written again


def _hyperparameters(dataset_uri: str, model_uri: str, **extra: Any) -> dict[str, str]:
    """What the ASL sends as HyperParameters (strings), for a default run."""
    values = {
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": "s3://bucket/sagemaker/code/sourcedir-x.tar.gz",
        "dataset_uri": dataset_uri,
        "model_uri": model_uri,
        "estimator": "svc",
        "cv_folds": "5",
        "hyperparameters": encode_object({}),
        "dataset": encode_object({}),
        "identity": encode_object({"identity": "model-0123456789ab", "inputs": {"scikit_learn": "1.9"}}),
        "execution_id": EXECUTION,
        "max_runtime_seconds": "3600",
    }
    return values | extra


def _container(tmp_path: Path, data: bytes, **extra: Any) -> tuple[list[str], dict[str, str], Path]:
    """The container's layout: the dataset in the train channel, the SM_* environment, the arguments.

    The entry point looks for the dataset's lineage.json in S3: the tests that use this run under moto
    (the ``aws`` fixture), where that bucket does not exist, so the lookup finds nothing.
    """
    channel = tmp_path / "opt" / "input" / "data" / "train"
    channel.mkdir(parents=True)
    (channel / "dataset.csv").write_bytes(data)
    dataset_uri = "s3://artifacts-bucket/artifacts/2026-11-25/dataset-0123456789ab/dataset.csv"
    model = tmp_path / "artifacts" / "2026-11-25" / "model-0123456789ab" / "model.pkl"
    env = {
        "SM_CHANNEL_TRAIN": str(channel),
        "SM_MODEL_DIR": str(tmp_path / "opt" / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "opt" / "output" / "data"),
        "SM_HOSTS": '["algo-1"]',
        "SM_CURRENT_HOST": "algo-1",
        "SM_TRAINING_ENV": json.dumps({"job_name": "mlpipe-x-0"}),
        "MLPIPE_ALLOW_LOCAL_STORAGE": "true",
    }
    return to_cmd_args(_hyperparameters(dataset_uri, str(model), **extra)), env, model


def test_the_entry_point_writes_the_model_and_its_card_to_the_model_target(tmp_path: Path, aws: Any) -> None:
    args, env, model = _container(tmp_path, SAMPLE.read_bytes())
    assert "--sagemaker_program" not in args  # the toolkit's own hyperparameters are not the script's
    assert main(args, env=env) == 0
    card = json.loads((model.parent / "metrics.json").read_text())
    dataset_uri = "s3://artifacts-bucket/artifacts/2026-11-25/dataset-0123456789ab/dataset.csv"
    assert card["dataset"]["uri"] == dataset_uri  # the dataset target, not the channel's local path
    assert card["lineage"]["input_targets"][0]["uri"] == dataset_uri
    assert card["lineage"]["identity"] == "model-0123456789ab"
    assert card["lineage"]["execution_id"] == EXECUTION
    assert card["lineage"]["training_job"] == "mlpipe-x-0"
    assert card["fit_estimate"]["seconds"] > 0
    # SageMaker's model.tar.gz gets the same two files
    assert (tmp_path / "opt" / "model" / "model.pkl").read_bytes() == model.read_bytes()
    assert (tmp_path / "opt" / "model" / "metrics.json").read_bytes() == (model.parent / "metrics.json").read_bytes()
    assert main(args, env=env) == 0  # a second job finds it complete and writes nothing new
    assert json.loads((model.parent / "metrics.json").read_text())["lineage"] == card["lineage"]


def test_the_entry_point_writes_nothing_on_a_bad_dataset_and_says_why(tmp_path: Path, aws: Any) -> None:
    args, env, model = _container(tmp_path, b"<html>not a csv</html>\n")
    assert main(args, env=env) == 1
    failure = (tmp_path / "opt" / "output" / "failure").read_text()
    assert failure.startswith("InvalidDatasetError: invalid dataset at s3://artifacts-bucket/")
    assert not model.parent.exists()
    cause = {
        "TrainingJobName": "mlpipe-x-0",
        "TrainingJobStatus": "Failed",
        "FailureReason": f"AlgorithmError: {failure}",
    }
    described = describe_error({"Error": "States.TaskFailed", "Cause": json.dumps(cause)})
    assert described["type"] == "InvalidDatasetError"
    assert described["message"].startswith("SageMaker training job mlpipe-x-0 ended Failed: AlgorithmError: Invalid")
    cause["FailureReason"] = "CapacityError: Unable to provision requested ML compute capacity"
    assert (
        describe_error({"Error": "States.TaskFailed", "Cause": json.dumps(cause)})["type"] == "TrainingJobFailedError"
    )


def test_the_estimate_is_checked_against_the_jobs_remaining_max_runtime(tmp_path: Path, aws: Any) -> None:
    # The setup allowance (download, pip) is spent from MaxRuntimeInSeconds first: 301 s leave nothing to fit in.
    args, env, model = _container(tmp_path, SAMPLE.read_bytes(), max_runtime_seconds="301")
    assert main(args, env=env) == 1
    assert (tmp_path / "opt" / "output" / "failure").read_text().startswith("TrainingTooLargeError: training svc")
    assert not model.exists()


def test_only_the_first_host_trains(tmp_path: Path, aws: Any) -> None:
    args, env, model = _container(tmp_path, SAMPLE.read_bytes())
    env |= {"SM_HOSTS": '["algo-1", "algo-2"]', "SM_CURRENT_HOST": "algo-2"}
    assert main(args, env=env) == 0
    assert not model.exists()


def test_the_archives_train_py_runs_in_a_fresh_interpreter(tmp_path: Path) -> None:
    code = tmp_path / "code"
    with tarfile.open(fileobj=io.BytesIO(source_archive()), mode="r:gz") as tar:
        tar.extractall(code, filter="data")
    args, env, model = _container(tmp_path, SAMPLE.read_bytes())
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runpy, sys, mlpipe; print(mlpipe.__file__); sys.argv[0] = 'train.py'; "
            "runpy.run_path('train.py', run_name='__main__')",
            *args,
        ],
        cwd=code,
        env=env | {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(code)},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(str(code / "mlpipe"))  # the archive's package, not the checkout's
    assert json.loads((model.parent / "metrics.json").read_text())["rows"] == 150


def test_after_the_job_the_train_function_only_reads_the_card(tmp_path: Path) -> None:
    dataset = tmp_path / "dataset.csv"
    dataset.write_bytes(SAMPLE.read_bytes())
    model = tmp_path / "model" / "model.pkl"
    with pytest.raises(MissingInputError, match="missing after the SageMaker training job"):
        train(
            Run("2026-11-25", dataset_uri=str(dataset), model_uri=str(model), train_on="sagemaker"),
            store=Store.on_this_machine(),
        )
    assert not model.parent.exists()
