"""Run ``arn:aws:states:::sagemaker:createTrainingJob.sync`` in this process, as ``lambdas.py`` runs Lambda tasks.

moto's interpreter has no SageMaker integration: it gives every ``sagemaker`` task its
``StateTaskServiceUnsupported``, which answers "Unsupported sync callback procedure" for ``.sync``.
While ``InProcessTrainingJobs.active()`` is on, that class runs a CreateTrainingJob task the way
SageMaker would: it records the request (``requests``, for tests), lays out the container's
contract in a temporary directory (``input/config/hyperparameters.json``, the ``train`` channel
holding the dataset copied from the local or moto store, ``model/``, ``output/data/``), runs the
job's entry point, ``mlpipe.sagemaker.main``, with the hyperparameters as the toolkit passes them
(``--name value``, each value JSON-decoded first) and the ``SM_*`` environment, writes SageMaker's
``model.tar.gz`` to the request's ``S3OutputPath``, and returns a DescribeTrainingJob-shaped result.
A failed job fails the task with ``States.TaskFailed`` and that result (``FailureReason``: the
entry point's ``failure`` file) as its Cause, as Step Functions does.

The entry point runs in this process (so that moto's S3 is its S3) from the ``mlpipe`` package
that is imported here; the staged source archive is checked to exist and to hold ``train.py`` and
``requirements.txt`` (tests/unit/test_sagemaker.py runs its ``train.py`` in a fresh interpreter).

Pinned with ``lambdas.MOTO_SERIES``: check this module when moto moves.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mlpipe.exceptions import PipelineError
from mlpipe.sagemaker import ENTRY_POINT
from mlpipe.sagemaker_job import main
from mlpipe.storage import Store, join_uri
from pipeline_local.lambdas import ACCOUNT, REGION, check_moto_version

RUNNING, COMPLETED, FAILED = "InProgress", "Completed", "Failed"


def to_cmd_args(hyperparameters: dict[str, str]) -> list[str]:
    """The entry point's arguments from the job's HyperParameters, as sagemaker-training-toolkit makes them.

    Each value is JSON-decoded when it can be (``environment.read_hyperparameters``), the
    ``sagemaker_*`` ones are the toolkit's own and not passed, and the rest become ``--key value``
    in key order, a decoded object as ``k=v,...`` (``mapping.to_cmd_args``).
    """
    args: list[str] = []
    for key in sorted(hyperparameters):
        if key.startswith("sagemaker_"):
            continue
        value: Any = hyperparameters[key]
        with contextlib.suppress(ValueError, TypeError):
            value = json.loads(value)
        if isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        args += [f"--{key}" if len(key) > 1 else f"-{key}", str(value)]
    return args


class InProcessTrainingJobs:
    """While active, a state machine's CreateTrainingJob.sync tasks run ``mlpipe.sagemaker.main`` here."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = dict(env or {})
        self.requests: list[dict[str, Any]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        """Record a CreateTrainingJob request; the job runs when the state machine first waits for it."""
        name = str(request["TrainingJobName"])
        with self._lock:
            if name in self.jobs:
                raise ValueError(f"a training job named {name} already exists (a name is never reused)")
            self.requests.append(request)
            arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name.lower()}"
            self.jobs[name] = {"request": request, "TrainingJobArn": arn, "TrainingJobStatus": RUNNING}
        return {"TrainingJobArn": arn}

    def wait(self, name: str) -> dict[str, Any]:
        """Run the job (once) and return its DescribeTrainingJob response."""
        job = self.jobs[name]
        if job["TrainingJobStatus"] == RUNNING:
            job.update(self._run(job["request"]))
        return self.describe(name)

    def describe(self, name: str) -> dict[str, Any]:
        """The job as DescribeTrainingJob gives it (the request's fields, status, times, artifacts)."""
        job = self.jobs[name]
        request = job["request"]
        described = {key: value for key, value in request.items() if key != "Tags"}
        described |= {key: value for key, value in job.items() if key != "request"}
        return described

    def _run(self, request: dict[str, Any]) -> dict[str, Any]:
        store = Store.on_this_machine()  # SageMaker's side of the job: its own access to S3

        hyperparameters = {key: str(value) for key, value in request["HyperParameters"].items()}
        created = time.time()
        with tempfile.TemporaryDirectory(prefix="mlpipe-sagemaker-") as scratch:
            root = Path(scratch)
            config, channel = root / "input" / "config", root / "input" / "data" / "train"
            model_dir, output = root / "model", root / "output"
            for directory in (config, channel, model_dir, output / "data"):
                directory.mkdir(parents=True)
            (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
            failure = self._check_source(hyperparameters.get("sagemaker_submit_directory"), ENTRY_POINT, store)
            if failure is None:
                uri = request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
                source = store.target(uri)
                with source.open_read() as handle, (channel / uri.rstrip("/").rsplit("/", 1)[-1]).open("wb") as out:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        out.write(chunk)
                decoded = {}
                for key, value in hyperparameters.items():
                    try:
                        decoded[key] = json.loads(value)
                    except ValueError:
                        decoded[key] = value
                env = self.env | {
                    "SM_CHANNEL_TRAIN": str(channel),
                    "SM_CHANNELS": json.dumps(["train"]),
                    "SM_MODEL_DIR": str(model_dir),
                    "SM_OUTPUT_DIR": str(output),
                    "SM_OUTPUT_DATA_DIR": str(output / "data"),
                    "SM_INPUT_CONFIG_DIR": str(config),
                    "SM_HOSTS": json.dumps(["algo-1"]),
                    "SM_CURRENT_HOST": "algo-1",
                    "SM_HPS": json.dumps({k: v for k, v in decoded.items() if not k.startswith("sagemaker_")}),
                    "SM_TRAINING_ENV": json.dumps({"job_name": request["TrainingJobName"]}),
                }
                started = time.time()
                status = main(to_cmd_args(hyperparameters), env=env)
                if status != 0:
                    reason = (output / "failure").read_text().strip() if (output / "failure").exists() else ""
                    failure = f"AlgorithmError: {reason or f'the entry point exited with {status}'}"
            else:
                started = time.time()
            ended = time.time()
            artifacts = join_uri(request["OutputDataConfig"]["S3OutputPath"], request["TrainingJobName"], "output")
            result: dict[str, Any] = {
                "CreationTime": created,
                "TrainingStartTime": started,
                "TrainingEndTime": ended,
                "TrainingTimeInSeconds": int(ended - started) + 1,
                "BillableTimeInSeconds": int(ended - started) + 1,
                "LastModifiedTime": ended,
            }
            if failure is not None:
                return result | {"TrainingJobStatus": FAILED, "SecondaryStatus": FAILED, "FailureReason": failure}
            archive = io.BytesIO()
            with tarfile.open(fileobj=archive, mode="w:gz") as tar:
                for path in sorted(model_dir.iterdir()):
                    tar.add(path, arcname=path.name)
            model_tar = store.target(join_uri(artifacts, "model.tar.gz"))
            model_tar.write_bytes(archive.getvalue(), overwrite=True)
            return result | {
                "TrainingJobStatus": COMPLETED,
                "SecondaryStatus": COMPLETED,
                "ModelArtifacts": {"S3ModelArtifacts": model_tar.uri},
            }

    @staticmethod
    def _check_source(uri: str | None, entry_point: str, store: Store) -> str | None:
        """None when the staged source archive exists and holds the entry point and requirements.txt; else why not."""

        if not uri:
            return "ClientError: sagemaker_submit_directory is missing"
        try:
            with tarfile.open(fileobj=io.BytesIO(store.target(uri).read_bytes()), mode="r:gz") as tar:
                names = set(tar.getnames())
        except (PipelineError, tarfile.TarError) as exc:
            return f"ClientError: cannot read the source archive {uri}: {exc}"
        missing = {entry_point, "requirements.txt"} - names
        return f"ClientError: {uri} lacks {', '.join(sorted(missing))}" if missing else None

    @contextlib.contextmanager
    def active(self) -> Iterator[InProcessTrainingJobs]:
        """Patch moto's unsupported-service task for the duration of the block (see the module's docstring)."""
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
            state_task_service_unsupported as unsupported,
        )

        check_moto_version()
        service = unsupported.StateTaskServiceUnsupported
        router = self
        originals = {
            name: getattr(service, name)
            for name in (
                "_assert_integration_pattern_is_supported",
                "_eval_service_task",
                "_build_sync_resolver",
                "_log_unsupported_warning",
            )
        }

        def ours(task: Any) -> bool:
            resource = task.resource
            return bool(
                resource.service_name == "sagemaker"
                and resource.api_action.lower() == "createtrainingjob"
                and resource.condition == "sync"
            )

        def assert_supported(task: Any) -> None:
            if not ours(task):
                originals["_assert_integration_pattern_is_supported"](task)

        def log_warning(task: Any) -> None:
            if not ours(task):
                originals["_log_unsupported_warning"](task)

        # moto calls these with keywords: env, resource_runtime_part, normalised_parameters, state_credentials.
        def eval_service_task(task: Any, *args: Any, **kwargs: Any) -> None:
            if not ours(task):
                originals["_eval_service_task"](task, *args, **kwargs)
                return
            kwargs["env"].stack.append(router.create(kwargs["normalised_parameters"]))

        def build_sync_resolver(task: Any, *args: Any, **kwargs: Any) -> Callable[[], Any] | None:
            if not ours(task):
                return originals["_build_sync_resolver"](task, *args, **kwargs)  # type: ignore[no-any-return]
            env = kwargs["env"]
            env.stack.pop()  # CreateTrainingJob's response, which the resolver replaces
            name = str(kwargs["normalised_parameters"]["TrainingJobName"])

            def resolve() -> dict[str, Any]:
                described = router.wait(name)
                if described["TrainingJobStatus"] != COMPLETED:
                    raise _task_failed(task, env, described)
                return described

            return resolve

        patches = {
            "_assert_integration_pattern_is_supported": assert_supported,
            "_eval_service_task": eval_service_task,
            "_build_sync_resolver": build_sync_resolver,
            "_log_unsupported_warning": log_warning,
        }
        for name, patch in patches.items():
            setattr(service, name, patch)
        try:
            yield self
        finally:
            for name, original in originals.items():
                setattr(service, name, original)


def _task_failed(task: Any, env: Any, described: dict[str, Any]) -> Exception:
    """Step Functions' failure of a .sync job that did not complete: States.TaskFailed, the job as its Cause."""
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    error = StatesErrorNameType.StatesTaskFailed
    return FailureEventException(
        FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=error),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(  # type: ignore[typeddict-item]
                taskFailedEventDetails=TaskFailedEventDetails(
                    resource=task._get_sfn_resource(),
                    resourceType=task._get_sfn_resource_type(),
                    error=error.to_name(),
                    cause=json.dumps(described, default=str),
                )
            ),
        )
    )
