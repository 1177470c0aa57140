"""The SageMaker training job's entry point: like a handler, it parses its input and calls the same ``train_model``.

``mlpipe.sagemaker`` stages this package with an entry script that calls ``main`` (see that module
for the job as a whole: the code, the data channel and the time budget). ``main`` reads the
container's contract, trains the run's model into its model target (atomic and conditional, as the
Lambda does) unless it is complete, and copies it to ``SM_MODEL_DIR`` once its bytes match its card
(``hand_over``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlpipe.artifacts import CARD_FILE, model_complete, read_checked
from mlpipe.config import Settings
from mlpipe.contract import card_sections, read_profile
from mlpipe.description import DatasetDescription
from mlpipe.exceptions import InvalidRequestError, PipelineError
from mlpipe.lineage import known_stats, lineage_record
from mlpipe.problem import AUTO as AUTO_TASK
from mlpipe.problem import DEFAULT_TARGET_TRANSFORM
from mlpipe.sagemaker import CHANNEL, ENTRY_POINT, SETUP_ALLOWANCE_SECONDS
from mlpipe.storage import LocalTarget, Store, Target
from mlpipe.training import train_model

LOG = logging.getLogger(__name__)


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
    parser.add_argument("--task", default=AUTO_TASK, help="auto, classification or regression (mlpipe.problem)")
    parser.add_argument("--target_transform", default=DEFAULT_TARGET_TRANSFORM)
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
        store = Store.from_settings(Settings.from_env(env))
        model = store.target(args.model_uri)
        if model_complete(model):
            LOG.info("%s is already complete: nothing to train", model.uri)
        else:
            budget = args.max_runtime_seconds

            def time_left() -> float:
                assert budget is not None
                return float(budget) - SETUP_ALLOWANCE_SECONDS - (time.monotonic() - started)

            _train(args, env, store, model, time_left if budget is not None else None)
        hand_over(model, Path(env.get("SM_MODEL_DIR", "/opt/ml/model")))
        return 0
    except PipelineError as exc:
        reason = f"{type(exc).__name__}: {exc}"
        LOG.error("training failed: %s", reason)
        with contextlib.suppress(OSError):
            output_dir.mkdir(parents=True, exist_ok=True)
            (output_dir / "failure").write_text(reason + "\n")
        return 1


def hand_over(model: Target, model_dir: Path) -> None:
    """Copy the model target's model.pkl and metrics.json to ``model_dir`` (SageMaker's model.tar.gz), checked.

    The model is read once and checked against the sha256 its card records, and exactly those bytes
    (and the card as read) are written: a model replaced after training is an IntegrityError, and
    nothing is written then. Each file appears whole or not at all (a temporary file, renamed).
    """
    checked = read_checked(model, consequence="is not handed to SageMaker")
    model_dir.mkdir(parents=True, exist_ok=True)
    for name, data in (("model.pkl", checked.payload), (CARD_FILE, checked.card_bytes)):
        partial = model_dir / f".{name}.partial"
        partial.write_bytes(data)
        partial.replace(model_dir / name)


def _train(
    args: argparse.Namespace,
    env: Mapping[str, str],
    store: Store,
    model: Target,
    time_left: Callable[[], float] | None,
) -> None:
    """Train the job's model from the ``train`` channel, named by its S3 URI in the card."""
    channel = Path(env.get("SM_CHANNEL_TRAIN", f"/opt/ml/input/data/{CHANNEL}"))
    dataset = ChannelTarget(channel_file(channel, args.dataset_uri), args.dataset_uri)
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
        lineage=lineage,
        time_left=time_left,
        # The download's check, from the dataset's lineage.json in S3 (when the role may read it).
        known=known_stats(store.target(args.dataset_uri), description),
        # The download's profile of the data (mlpipe.contract), from the dataset's profile.json in S3 likewise.
        sections=card_sections(read_profile(store.target(args.dataset_uri))),
        task=args.task,
        target_transform=args.target_transform,
    )
