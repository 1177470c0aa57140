"""Training on SageMaker: the job's name, its code, and its entry point, which calls the same ``train_model``.

With ``TrainOn=sagemaker`` the state machine's training step is a SageMaker training job
(``arn:aws:states:::sagemaker:createTrainingJob.sync``) on scikit-learn's prebuilt container in script
mode. Three things make it the same training as the Lambda's:

- **The code.** The plan stages ``sourcedir-<sha256>.tar.gz`` (``stage_source``): this very
  ``mlpipe`` package, the entry script ``train.py`` (which calls ``main`` below) and a
  ``requirements.txt`` pinning the ML layer's versions, which the container's training toolkit
  installs before it runs the script. The container's own scikit-learn (1.4.2 in the newest
  framework version) is not the pipeline's, and ``mlpipe.loading`` refuses a model pickled by another
  version: the pins make the job train with the pipeline's. pip needs the job to reach PyPI (no
  network isolation, no VPC without a NAT); without that, use an image with the pins installed
  (the ``SageMakerImageUri`` parameter).
- **The data and the outputs.** The dataset target is the job's ``train`` channel
  (``SM_CHANNEL_TRAIN``); ``main`` reads it there but names it by its S3 URI in the card's lineage,
  and writes ``model.pkl`` and ``metrics.json`` to the run's model target through
  ``mlpipe.targets`` (atomic and conditional, as the Lambda does), so the skip check and upload
  do not change. Copies go to ``SM_MODEL_DIR`` too, which SageMaker tars into its ``model.tar.gz``.
- **The time budget.** ``TrainingTooLargeError`` is decided against the job's remaining
  ``MaxRuntimeInSeconds`` instead of the Lambda's remaining time.

Hyperparameters reach the script as command-line arguments (``--name value``, as the toolkit
passes them): the toolkit JSON-decodes each value first and would turn a JSON object into
``k=v,...``, so objects travel base64-encoded (the ASL's ``States.Base64Encode``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import hashlib
import io
import json
import logging
import os
import re
import sys
import tarfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpipe.exceptions import InvalidRequestError, PipelineError, TargetExistsError
from mlpipe.targets import LocalTarget, join_uri, split_uri, target_for

if TYPE_CHECKING:
    from mlpipe.config import Settings

LOG = logging.getLogger(__name__)

# sagemaker-python-sdk's image_uri_config/sklearn.json: the newest training framework version, and the
# image URI is <registry>.dkr.ecr.<region>.<suffix>/sagemaker-scikit-learn:<version>-cpu-py3.
FRAMEWORK_VERSION = "1.4-2-py312"
IMAGE_REPOSITORY = "sagemaker-scikit-learn"
IMAGE_TAG = f"{FRAMEWORK_VERSION}-cpu-py3"
ENTRY_POINT = "train.py"
REQUIREMENTS = "sagemaker_requirements.txt"  # beside this module; requirements.txt in the source archive
CHANNEL = "train"
# CreateTrainingJob's TrainingJobName: 1 to 63 characters, ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$, unique per account
# and region (a name stays taken after its job ended). The state machine appends "-<retry count>".
JOB_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
JOB_NAME_MAX = 63
RETRY_SUFFIX_MAX = 3  # "-" and at most two digits: the task's Retry blocks allow fewer than 100 attempts
# The job's clock runs before the script starts (the channel's download, pip installing the pins): the
# estimate must fit in what is left of MaxRuntimeInSeconds after that.
SETUP_ALLOWANCE_SECONDS = 300.0

ENTRY_SCRIPT = '''"""SageMaker's entry point (script mode): mlpipe's training, the function the train Lambda calls."""

import sys

from mlpipe.sagemaker import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''


def training_job_name(prefix: str, model_identity: str, execution_id: str | None) -> str:
    """The job's name without the retry suffix: ``<prefix>-<model hash>-<execution hash>``.

    ``prefix`` is the stack's name (``TRAINING_JOB_PREFIX``), which the state machine's role allows.
    The model's identity says what is trained; the execution's hash keeps a rerun of the same date
    (a new execution) from colliding with the name of an earlier, failed job, since a name can never
    be used twice. A retry within the execution gets ``-<retry count>`` from the state machine.
    InvalidRequestError when the prefix leaves no valid name (too long, or other characters).
    """
    model_hash = model_identity.rsplit("-", 1)[-1][:12]
    execution_hash = hashlib.sha256((execution_id or f"uuid:{uuid.uuid4()}").encode()).hexdigest()[:8]
    name = f"{prefix}-{model_hash}-{execution_hash}"
    if len(name) + RETRY_SUFFIX_MAX > JOB_NAME_MAX or not JOB_NAME_PATTERN.match(name):
        room = JOB_NAME_MAX - RETRY_SUFFIX_MAX - len(name) + len(prefix)
        raise InvalidRequestError(
            f"TRAINING_JOB_PREFIX {prefix!r} (the stack's name) does not leave a valid SageMaker training job name: "
            f"with TrainOn=sagemaker it must be at most {room} characters of letters, digits and hyphens"
        )
    return name


def sagemaker_root(settings: Settings, artifact_root: str) -> str:
    """Where the staged code (``code/``) and SageMaker's own output (``output/``) go.

    ``SAGEMAKER_ROOT`` (the template sets ``s3://<artifacts bucket>/sagemaker``), else ``sagemaker``
    beside the artifact root.
    """
    if settings.sagemaker_root:
        return settings.sagemaker_root
    local = settings.allow_local_storage
    scheme, location = split_uri(artifact_root, allow_local=local)
    parent = location.rstrip("/").rsplit("/", 1)[0] if "/" in location.rstrip("/") else location
    return join_uri(f"s3://{parent}" if scheme == "s3" else parent, "sagemaker", allow_local=local)


def source_archive() -> bytes:
    """``sourcedir.tar.gz``: ``train.py``, ``requirements.txt`` and the ``mlpipe`` package, byte for byte reproducible.

    Sorted members, zero times and owners, and a gzip header without a time: the same code gives the
    same bytes, so the archive's sha256 names it and is staged once.
    """
    package = Path(__file__).resolve().parent
    members: list[tuple[str, bytes]] = [
        (ENTRY_POINT, ENTRY_SCRIPT.encode()),
        ("requirements.txt", (package / REQUIREMENTS).read_bytes()),
    ]
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package)
        if path.is_file() and "__pycache__" not in relative.parts and path.suffix in {".py", ".json", ".txt"}:
            members.append((f"mlpipe/{relative.as_posix()}", path.read_bytes()))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def stage_source(root: str, *, allow_local: bool) -> str:
    """Write the source archive to ``<root>/code/sourcedir-<sha256 prefix>.tar.gz`` unless it is there; its URI."""
    payload = source_archive()
    digest = hashlib.sha256(payload).hexdigest()[:16]
    target = target_for(join_uri(root, "code", f"sourcedir-{digest}.tar.gz", allow_local=allow_local))
    if not target.exists():
        try:
            target.write_bytes(payload)
            LOG.info("staged the training code at %s", target.uri)
        except TargetExistsError:
            pass  # another execution staged the same bytes first
    return target.uri


def encode_object(value: Any) -> str:
    """A JSON value as base64 text, which the toolkit's decoding leaves alone (the ASL's ``States.Base64Encode``)."""
    return base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()


# CreateTrainingJob's limit on a hyperparameter's value (botocore's sagemaker model: HyperParameterValue).
HYPERPARAMETER_VALUE_MAX = 2500


def check_hyperparameter_sizes(objects: Mapping[str, Any]) -> None:
    """InvalidRequestError, before anything runs, when an object the job gets as a hyperparameter is too long.

    The ASL sends each as base64 of its compact JSON (``States.Base64Encode(States.JsonToString(...))``);
    SageMaker refuses a value over HYPERPARAMETER_VALUE_MAX characters, which the state machine would
    only learn from a failed CreateTrainingJob.
    """
    for name, value in objects.items():
        size = len(encode_object(value))
        if size > HYPERPARAMETER_VALUE_MAX:
            raise InvalidRequestError(
                f"{name} is {size} characters as a SageMaker hyperparameter (base64 of its JSON), more than the "
                f"{HYPERPARAMETER_VALUE_MAX} SageMaker accepts: shorten it (for a dataset, drop_columns instead of "
                "a long feature_columns list; fewer labels), or train on Lambda (TrainOn=lambda)"
            )


def _decode_object(text: str) -> Any:
    try:
        return json.loads(base64.b64decode(text, validate=True))
    except ValueError as exc:
        raise InvalidRequestError(f"a hyperparameter is not base64-encoded JSON: {text[:40]!r}: {exc}") from exc


class ChannelTarget(LocalTarget):
    """The dataset as SageMaker downloaded it to the ``train`` channel, read there but named by its S3 URI.

    So the card's ``dataset.uri`` and lineage name the dataset target, not ``/opt/ml/input/data/train``.
    It is read-only: training never writes its input.
    """

    def __init__(self, path: str | os.PathLike[str], uri: str) -> None:
        super().__init__(path)
        self.local_uri = self.uri
        self.uri = uri

    def atomic_write(self, *, overwrite: bool = False, metadata: dict[str, str] | None = None) -> Any:
        raise PipelineError(f"{self.uri} is the training job's input channel, which is read-only")


def channel_file(channel: Path, dataset_uri: str) -> Path:
    """The dataset's file in the channel directory: the key's last segment (an S3Prefix channel keeps it)."""
    path = channel / dataset_uri.rstrip("/").rsplit("/", 1)[-1]
    if path.is_file():
        return path
    found = sorted(p for p in channel.rglob("*") if p.is_file())
    if len(found) != 1:
        raise InvalidRequestError(
            f"the {CHANNEL} channel {channel} should hold the one file of {dataset_uri}, it holds {len(found)}"
        )
    return found[0]


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=ENTRY_POINT, description="mlpipe's training as a SageMaker entry point")
    parser.add_argument("--dataset_uri", required=True)
    parser.add_argument("--model_uri", required=True)
    parser.add_argument("--estimator", required=True)
    parser.add_argument("--cv_folds", type=int, required=True)
    parser.add_argument("--hyperparameters", type=_decode_object, default={})
    parser.add_argument("--dataset", type=_decode_object, default=None, help="the dataset description")
    parser.add_argument("--identity", type=_decode_object, default=None, help="the model's identity, from the plan")
    parser.add_argument("--execution_id", default=None)
    parser.add_argument("--max_runtime_seconds", type=float, default=None)
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """The training job's entry point: 0 when the model target is complete, 1 (and ``failure``) when not.

    Reads the container's contract from ``env`` (default ``os.environ``): ``SM_CHANNEL_TRAIN``,
    ``SM_MODEL_DIR``, ``SM_OUTPUT_DATA_DIR``, ``SM_HOSTS`` / ``SM_CURRENT_HOST``. Only the first host
    trains (the training is single-node; more instances would fit the same model again). A named
    error (``InvalidDatasetError``, ``TrainingTooLargeError``, ...) is written as ``Type: message`` to
    ``/opt/ml/output/failure``, which SageMaker reports as the job's FailureReason; nothing is
    written to the model target then.
    """
    from mlpipe.artifacts import metrics_target, model_complete
    from mlpipe.config import Settings
    from mlpipe.description import DatasetDescription
    from mlpipe.lineage import lineage_record
    from mlpipe.tasks import known_stats
    from mlpipe.training import train_model

    started = time.monotonic()
    env = os.environ if env is None else env
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    output_dir = Path(env.get("SM_OUTPUT_DIR") or Path(env.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")).parent)
    try:
        args = _arguments(sys.argv[1:] if argv is None else argv)
        hosts = json.loads(env.get("SM_HOSTS") or "[]")
        if hosts and env.get("SM_CURRENT_HOST") not in (None, sorted(hosts)[0]):
            LOG.info("host %s does not train: the training is single-node, %s trains", env["SM_CURRENT_HOST"], hosts[0])
            return 0
        settings = Settings.from_env(env)
        local = settings.allow_local_storage
        model = target_for(args.model_uri, allow_local=local)
        if model_complete(model, allow_local=local):
            LOG.info("%s is already complete: nothing to train", model.uri)
        else:
            channel = Path(env.get("SM_CHANNEL_TRAIN", f"/opt/ml/input/data/{CHANNEL}"))
            dataset = ChannelTarget(channel_file(channel, args.dataset_uri), args.dataset_uri)
            budget = args.max_runtime_seconds

            def time_left() -> float:
                assert budget is not None
                return float(budget) - SETUP_ALLOWANCE_SECONDS - (time.monotonic() - started)

            lineage = lineage_record(args.identity, execution_id=args.execution_id, input_targets=[])
            job = json.loads(env.get("SM_TRAINING_ENV") or "{}").get("job_name")
            if job:
                lineage["training_job"] = job
            description = DatasetDescription.from_value(args.dataset)
            train_model(
                dataset,
                model,
                estimator=args.estimator,
                hyperparameters=args.hyperparameters,
                cv_folds=args.cv_folds,
                description=description,
                allow_local=local,
                lineage=lineage,
                time_left=time_left if budget is not None else None,
                # The download's check, from the dataset's lineage.json in S3 (when the role may read it).
                known=known_stats(target_for(args.dataset_uri, allow_local=local), description, allow_local=local),
            )
        model_dir = Path(env.get("SM_MODEL_DIR", "/opt/ml/model"))
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "model.pkl").write_bytes(model.read_bytes())
        (model_dir / "metrics.json").write_bytes(metrics_target(model, allow_local=local).read_bytes())
        return 0
    except PipelineError as exc:
        reason = f"{type(exc).__name__}: {exc}"
        LOG.error("training failed: %s", reason)
        with contextlib.suppress(OSError):
            output_dir.mkdir(parents=True, exist_ok=True)
            (output_dir / "failure").write_text(reason + "\n")
        return 1


def failure_type(reason: str) -> str | None:
    """The pipeline error named in a job's FailureReason (``AlgorithmError: InvalidDatasetError: ...``), if any."""
    from mlpipe import exceptions

    names = {
        name
        for name, value in vars(exceptions).items()
        if isinstance(value, type) and issubclass(value, exceptions.PipelineError)
    }
    for match in re.finditer(r"\b([A-Z][A-Za-z]+Error):", reason):
        if match.group(1) in names:
            return match.group(1)
    return None
