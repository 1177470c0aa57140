"""Training on SageMaker, the plan's side: the job's name, its staged code and the limits of its hyperparameters.

The job's entry point, which calls the same ``train_model``, is ``mlpipe.sagemaker_job``.

With ``TrainOn=sagemaker`` the state machine's training step is a SageMaker training job
(``arn:aws:states:::sagemaker:createTrainingJob.sync``) on scikit-learn's prebuilt container in script
mode. Three things make it the same training as the Lambda's:

- **The code.** The plan stages ``sourcedir-<sha256>.tar.gz`` (``stage_source``): this very
  ``mlpipe`` package, the entry script ``train.py`` (which calls ``mlpipe.sagemaker_job.main``) and a
  ``requirements.txt`` pinning the ML layer's versions, which the container's training toolkit
  installs before it runs the script. The container's own scikit-learn (1.4.2 in the newest
  framework version) is not the pipeline's, and ``mlpipe.loading`` refuses a model pickled by another
  version: the pins make the job train with the pipeline's. pip needs the job to reach PyPI (no
  network isolation, no VPC without a NAT); without that, use an image with the pins installed
  (the ``SageMakerImageUri`` parameter).
- **The data and the outputs.** The dataset target is the job's ``train`` channel
  (``SM_CHANNEL_TRAIN``); the entry point reads it there but names it by its S3 URI in the card's lineage,
  and writes ``model.pkl`` and ``metrics.json`` to the run's model target through
  ``mlpipe.storage`` (atomic and conditional, as the Lambda does), so the skip check and upload
  do not change. Copies go to ``SM_MODEL_DIR`` too, which SageMaker tars into its ``model.tar.gz``.
- **The time budget.** ``TrainingTooLargeError`` is decided against the job's remaining
  ``MaxRuntimeInSeconds`` instead of the Lambda's remaining time.

Hyperparameters reach the script as command-line arguments (``--name value``, as the toolkit
passes them): the toolkit JSON-decodes each value first and would turn a JSON object into
``k=v,...``, so objects travel base64-encoded (the ASL's ``States.Base64Encode``).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import logging
import re
import tarfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlpipe import exceptions
from mlpipe.exceptions import InvalidRequestError, TargetExistsError
from mlpipe.storage import Store, join_uri, parse_uri

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

from mlpipe.sagemaker_job import main

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


def sagemaker_root(configured: str | None, artifact_root: str) -> str:
    """Where the staged code (``code/``) and SageMaker's own output (``output/``) go.

    ``configured`` (``SAGEMAKER_ROOT``: the template sets ``s3://<artifacts bucket>/sagemaker``), else
    ``sagemaker`` beside the artifact root.
    """
    if configured:
        return configured
    scheme, location = parse_uri(artifact_root)
    parent = location.rstrip("/").rsplit("/", 1)[0] if "/" in location.rstrip("/") else location
    return join_uri(f"s3://{parent}" if scheme == "s3" else parent, "sagemaker")


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


def stage_source(root: str, *, store: Store) -> str:
    """Write the source archive to ``<root>/code/sourcedir-<sha256 prefix>.tar.gz`` unless it is there; its URI."""
    payload = source_archive()
    digest = hashlib.sha256(payload).hexdigest()[:16]
    target = store.target(store.join(root, "code", f"sourcedir-{digest}.tar.gz"))
    if not target.exists():
        try:
            target.write_bytes(payload)
            LOG.info("staged the training code at %s", target.uri)
        except TargetExistsError:
            pass  # another execution staged the same bytes first
    return target.uri


def encode_object(value: Any) -> str:
    """A JSON value as base64 text, which the toolkit's decoding leaves alone (the ASL's ``States.Base64Encode``)."""
    return base64.b64encode(json.dumps(value, separators=(",", ":"), allow_nan=False).encode()).decode()


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


def failure_type(reason: str) -> str | None:
    """The pipeline error named in a job's FailureReason (``AlgorithmError: InvalidDatasetError: ...``), if any."""
    names = {
        name
        for name, value in vars(exceptions).items()
        if isinstance(value, type) and issubclass(value, exceptions.PipelineError)
    }
    for match in re.finditer(r"\b([A-Z][A-Za-z]+Error):", reason):
        if match.group(1) in names:
            return match.group(1)
    return None
