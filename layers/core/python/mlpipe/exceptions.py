"""Every error the pipeline raises on purpose.

Step Functions matches a Lambda error by the exception's class name (the ``errorType`` of the
payload), so the names below are part of the state machine's contract: ``Retry`` lists the
retryable ones by name. Do not rename a class without changing ``statemachine/pipeline.asl.json``.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error raised on purpose by the pipeline."""

    retryable = False


# --- the request: event, parameters, URIs -------------------------------------------------------
class InvalidRequestError(PipelineError):
    """The event or its parameters are malformed: fix the input and start a new execution."""


class InvalidHyperparametersError(InvalidRequestError):
    """The estimator's hyperparameters have the wrong type, name or range."""


class InvalidModelNameError(InvalidRequestError):
    """A model name is not ``[a-z0-9][a-z0-9-]{0,62}`` (or is one a publish root uses for its own folders)."""


class UnknownModelError(InvalidRequestError):
    """No model of that name: no configuration document, or nothing published under that name (or no name given
    where several models are)."""


class InvalidModelConfigError(InvalidRequestError):
    """A model's configuration document (``<models>/<name>.json``) fails the plan's validation."""


class LegacyPublishLayoutError(InvalidRequestError):
    """The publish root holds a champion from before models had names: migrate it (``pipeline models migrate``)."""


class NoChampionError(InvalidRequestError):
    """There is no champion (no champion.json) under the publish location asked for: publish and promote one first."""


# --- the source ---------------------------------------------------------------------------------
class SourceUnavailableError(PipelineError):
    """The source failed in a way that may pass: HTTP 5xx or 429, a timeout or a dropped connection."""

    retryable = True


class SourceRejectedError(PipelineError):
    """The source answered, but not with a dataset: HTTP 4xx, a redirect loop or a forbidden redirect."""


class SourceTooLargeError(PipelineError):
    """The source sent more bytes than the configured maximum; the transfer was stopped."""


class SourceNotReadyError(PipelineError):
    """The source is not there (yet): HTTP 404, S3 NoSuchKey, no such local file; waited for up to SourceWaitSeconds."""

    retryable = True


class SourceChangedError(PipelineError):
    """The source's bytes are not the version the plan named (it was replaced meanwhile): plan again, it is retried."""

    retryable = True


class UploadIgnored(PipelineError):
    """An upload that is not the deployment's source (its key does not match SourceUrl); internal: ignored."""


class SourceFormatError(PipelineError):
    """The source's container cannot be read: a corrupt gzip stream, a zip without exactly one file in it."""


class DownloadTimeoutError(PipelineError):
    """The download did not finish in the time the function had left, less a margin to clean up: too slow a source."""


# --- the data -----------------------------------------------------------------------------------
class InvalidDatasetError(PipelineError):
    """The dataset is not the expected CSV (the message names the line and column)."""


class MissingInputError(PipelineError):
    """A task's input target does not exist: run the task that produces it first."""


class TrainingError(PipelineError):
    """scikit-learn could not fit a model on a valid dataset."""


class TrainingTooLargeError(PipelineError):
    """The estimated fit time or memory exceeds what the function has: another estimator, fewer rows, SageMaker."""


class TrainingJobFailedError(PipelineError):
    """The SageMaker training job failed or stopped (its FailureReason and log say why; the report names it so)."""


class IntegrityError(PipelineError):
    """A stored artifact does not match its recorded sha256 (corrupted or replaced)."""


class ModelRejectedError(PipelineError):
    """The quality gate refused the model (the state machine's Choice; this class names it for the docs and tests)."""


class SchemaChangedError(PipelineError):
    """The data's or the model's schema differs from the champion's (its data contract, ``mlpipe.contract``, in the
    download; its label set or feature schema, in the gate): each difference named, never promoted automatically."""


class IncompatibleModelError(PipelineError):
    """A model was pickled by another scikit-learn version than the one loading it."""


# --- storage ------------------------------------------------------------------------------------
class StorageError(PipelineError):
    """Storage refused a request (missing bucket, access denied, invalid key) or failed after retries."""


class StorageUnavailableError(StorageError):
    """Storage kept failing with throttling or 5xx after the SDK's own retries."""

    retryable = True


class TargetExistsError(PipelineError):
    """A conditional write found the target already written by someone else (internal: means "present")."""


class TargetChangedError(PipelineError):
    """A compare-and-swap found the object changed since it was read (internal: read again and retry)."""
