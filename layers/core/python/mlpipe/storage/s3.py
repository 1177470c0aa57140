"""S3 as a store: ``S3Target``, the listing of a prefix, and the clients a Store uses.

Writes go up with boto3's managed transfer. ``atomic_write()`` spools to a local temporary file
first (small objects: models, cards, lineage). ``stream_write()`` touches no /tmp: the sink is a
bounded pipe that the managed transfer (``upload_fileobj`` with ``stream_transfer()``, on a thread
of its own) reads as a non-seekable file, so the body goes up as a multipart upload while the block
is still writing. The end of the body (EOF on the pipe) is only given when the block ended without
an exception: whatever the block checks last (the validator's end-of-file checks) is checked
before s3transfer can send CompleteMultipartUpload. An exception in the block makes the pipe's
``read`` raise, and s3transfer then aborts the multipart upload (its CreateMultipartUpload task
registers AbortMultipartUpload as a failure cleanup: ``s3transfer/tasks.py``). Memory: at most
``max_in_memory_upload_chunks`` parts of ``multipart_chunksize`` in s3transfer's hands plus the one
being filled, and ``PIPE_CHUNKS`` pieces of at most ``CHUNK_SIZE`` in the pipe: about 48 MiB,
whatever the size. With 8 MiB parts S3's 10,000 parts hold 78 GiB, well beyond a source's 5 GiB.

The validator could not be the pipe's reader instead: it reads with the standard library's
``csv`` module, which pulls lines and cannot be fed chunk by chunk, and s3transfer pulls too; one
of the two has to run on another thread, and s3transfer already reads its body on its own.

Reads stream too: ``S3Target.open_read()`` is a seekable reader over GETs (a seek starts a new
ranged GET from there, checked against the first one's ETag), so a caller that reads a dataset
twice (validation, then pandas) needs neither /tmp nor memory for the object.

The clients belong to the ``Store`` that made the target (``S3Clients``: made on first use, in the
SDK's standard retry mode); there is no process-wide client.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from typing import IO, TYPE_CHECKING, Any, cast

from mlpipe.exceptions import StorageError, StorageUnavailableError, TargetChangedError, TargetExistsError
from mlpipe.storage.base import CHUNK_SIZE, Sink, StoredObject, Target

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig
    from mypy_boto3_s3 import S3Client

# stream_write's pipe holds at most this many pieces of at most CHUNK_SIZE between the writer and s3transfer.
PIPE_CHUNKS = 8
# A streamed read resumes (a ranged GET from where it broke) this many times before it fails.
READ_ATTEMPTS = 3
_S3_MISSING = {"404", "NoSuchKey", "NotFound"}
_S3_DENIED = {"403", "AccessDenied", "Forbidden"}
_S3_EXISTS = {"412", "PreconditionFailed"}
_S3_IN_FLIGHT = {"409", "ConditionalRequestConflict"}
CONFLICT_ATTEMPTS = 4
_S3_TRANSIENT = {
    "500",
    "502",
    "503",
    "504",
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "RequestTimeTooSkewed",
}


class S3Clients:
    """The two S3 clients of one Store, each made on first use by ``factory`` (default: ``default_client``).

    ``plain`` reads, lists and writes; ``conditional`` only creates, never replaces: s3transfer does
    not accept ``IfNoneMatch`` in ``ExtraArgs``, so that client adds the header to the two operations
    that make an object visible (PutObject and CompleteMultipartUpload), on every call.
    """

    def __init__(self, factory: Callable[[], S3Client] | None = None) -> None:
        self._factory = factory or default_client
        self._lock = threading.Lock()
        self._plain: S3Client | None = None
        self._conditional: S3Client | None = None

    @property
    def plain(self) -> S3Client:
        """The client for reads, listings, deletes and compare-and-swap writes."""
        with self._lock:
            if self._plain is None:
                self._plain = self._factory()
            return self._plain

    @property
    def conditional(self) -> S3Client:
        """A client whose PutObject and CompleteMultipartUpload carry ``If-None-Match: *``."""
        with self._lock:
            if self._conditional is None:
                self._conditional = _only_creates(self._factory())
            return self._conditional


def default_client() -> S3Client:
    """A new S3 client from the default credential chain, in the SDK's standard retry mode (throttling, 5xx)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"mode": "standard", "total_max_attempts": 5}))


def _only_creates(client: S3Client) -> S3Client:
    for operation in ("PutObject", "CompleteMultipartUpload"):
        shape = client.meta.service_model.operation_model(operation).input_shape
        if operation == "PutObject" and (shape is None or "IfMatch" not in shape.members):
            raise StorageError(
                f"this botocore ({client.meta.service_model.api_version} model) cannot send If-Match on PutObject: "
                "the champion's compare-and-swap needs a botocore with S3's If-Match (from November 2024 on)"
            )
        if shape is None or "IfNoneMatch" not in shape.members:
            raise StorageError(
                f"this botocore ({client.meta.service_model.api_version} model) cannot send "
                f"If-None-Match on {operation}: conditional writes need botocore >= 1.35.16"
            )
        client.meta.events.register(f"before-parameter-build.s3.{operation}", _if_none_match)
    return client


def _if_none_match(params: dict[str, Any], **_: Any) -> None:
    params["IfNoneMatch"] = "*"


class S3Target(Target):
    """An S3 object: ``atomic_write`` spools to /tmp, ``stream_write`` streams; both go up with boto3's managed
    transfer. Reads stream."""

    def __init__(self, bucket: str, key: str, clients: S3Clients | None = None) -> None:
        self.bucket = bucket
        self.key = key
        self.uri = f"s3://{bucket}/{key}"
        # A target made by a Store shares the Store's clients; one made alone gets clients of its own.
        self.clients = clients or S3Clients()

    @property
    def client(self) -> S3Client:
        """The plain client (reads, listings, the champion's compare-and-swap)."""
        return self.clients.plain

    def exists(self) -> bool:
        # A listing, not HeadObject: S3 answers a HeadObject on a missing key with 404 only to callers
        # allowed to list the whole bucket, and the functions may list only their own prefixes.
        # The key sorts first among the keys it prefixes, so one result is enough.
        try:
            listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.key, MaxKeys=1)
        except Exception as exc:
            raise storage_error(exc, f"cannot check {self.uri}") from exc
        contents = listing.get("Contents", [])
        return bool(contents) and contents[0]["Key"] == self.key

    @contextlib.contextmanager
    def open_read(self) -> Iterator[IO[bytes]]:
        # Streamed and seekable: no spool file, one GET per pass (a seek starts the next one).
        with io.BufferedReader(_ObjectReader(self), buffer_size=CHUNK_SIZE) as handle:
            yield handle

    @contextlib.contextmanager
    def open_version(self, etag: str, version_id: str | None = None) -> Iterator[io.BufferedReader[Any]]:
        """``open_read`` of exactly one version: the object's ``version_id`` (when the bucket keeps versions)
        whose ETag is ``etag``; TargetChangedError at the first GET that finds another (or none)."""
        reader = _ObjectReader(self, etag=etag, version_id=version_id)
        with io.BufferedReader(reader, buffer_size=CHUNK_SIZE) as handle:
            yield handle

    @contextlib.contextmanager
    def atomic_write(self, *, overwrite: bool = False, metadata: dict[str, str] | None = None) -> Iterator[IO[bytes]]:
        with tempfile.NamedTemporaryFile() as spool:
            yield spool
            spool.flush()
            client = self.clients.plain if overwrite else self.clients.conditional
            extra: dict[str, Any] = {"Metadata": metadata} if metadata else {}
            for attempt in range(CONFLICT_ATTEMPTS):
                try:
                    with open(spool.name, "rb") as body:  # s3transfer closes what it was given on failure
                        client.upload_fileobj(body, self.bucket, self.key, ExtraArgs=extra)
                    return
                except Exception as exc:
                    code = _error_code(exc)
                    if code in _S3_EXISTS:
                        raise TargetExistsError(f"{self.uri} was written by someone else meanwhile") from exc
                    # 409: another conditional write of this key is in flight and may still fail.
                    if code not in _S3_IN_FLIGHT or attempt == CONFLICT_ATTEMPTS - 1:
                        raise storage_error(exc, f"cannot write {self.uri}") from exc
                time.sleep(0.2 * 2**attempt)

    @contextlib.contextmanager
    def stream_write(self, *, overwrite: bool = False, metadata: dict[str, str] | None = None) -> Iterator[Sink]:
        client = self.clients.plain if overwrite else self.clients.conditional
        extra: dict[str, Any] = {"Metadata": metadata} if metadata else {}
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlpipe-upload") as executor:
            pipe = _Pipe(self.uri)
            pipe.upload = executor.submit(
                client.upload_fileobj,
                cast(IO[bytes], pipe),  # read(), readable() and seekable() are all s3transfer calls
                self.bucket,
                self.key,
                ExtraArgs=extra,
                Config=stream_transfer(),
            )
            try:
                yield pipe
            except BaseException:
                pipe.abort()  # the upload's read raises: s3transfer aborts the multipart upload
                with contextlib.suppress(Exception):
                    pipe.upload.result()  # wait for the abort before the exception goes on
                raise
            pipe.finish()  # EOF: now s3transfer may complete the upload
            try:
                pipe.upload.result()
            except Exception as exc:
                raise _stream_error(exc, self.uri) from exc

    def sibling(self, name: str) -> S3Target:
        folder = self.key.rsplit("/", 1)[0] + "/" if "/" in self.key else ""
        return S3Target(self.bucket, folder + name, self.clients)

    def check_location(self) -> None:
        # A listing under the target's own prefix: allowed by the functions' s3:prefix-scoped
        # ListBucket grant, and (unlike HeadObject, which answers a bare 404) it names a missing bucket.
        prefix = self.key.rsplit("/", 1)[0] + "/" if "/" in self.key else ""
        try:
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        except Exception as exc:
            raise storage_error(exc, f"cannot use s3://{self.bucket}/{prefix}") from exc

    def delete(self) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            raise storage_error(exc, f"cannot delete {self.uri}") from exc

    def head(self, *, denied_is_missing: bool = False) -> dict[str, str | None] | None:
        """``{"etag", "version_id"}`` of the object (``version_id`` None when the bucket keeps no versions), or
        None when there is no such object; a HeadObject, which ``s3:GetObject`` allows.

        S3 answers 403, not 404, for a missing key to a caller that may not list the bucket: with
        ``denied_is_missing`` (a caller that may read the key but not list) a 403 is "missing" too."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            code = _error_code(exc)
            if code in _S3_MISSING or (denied_is_missing and code in _S3_DENIED):
                return None
            raise storage_error(exc, f"cannot read {self.uri}") from exc
        version = response.get("VersionId")
        return {"etag": str(response["ETag"]), "version_id": None if version in {None, "null"} else str(version)}

    def bucket_missing(self) -> bool:
        """True when S3 says this target's bucket does not exist (a HeadBucket's 404); False when it exists, or when
        the caller may not ask (a 403: a role that may read keys but not list the bucket)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            if _error_code(exc) in {"404", "NoSuchBucket", "NotFound"}:
                return True
            if _error_code(exc) in _S3_DENIED:
                return False
            raise storage_error(exc, f"cannot read s3://{self.bucket}") from exc
        return False

    def read_versioned(self) -> tuple[bytes | None, str | None]:
        if not self.exists():
            return None, None
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key)
            return response["Body"].read(), str(response["ETag"])
        except Exception as exc:
            if _error_code(exc) in _S3_MISSING:
                return None, None
            raise storage_error(exc, f"cannot read {self.uri}") from exc

    def replace_if(self, data: bytes, version: str | None) -> None:
        condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=data, **condition)  # type: ignore[arg-type]
        except Exception as exc:
            if _error_code(exc) in _S3_EXISTS | _S3_IN_FLIGHT | _S3_MISSING:
                raise TargetChangedError(f"{self.uri} changed since it was read") from exc
            raise storage_error(exc, f"cannot write {self.uri}") from exc


@cache
def stream_transfer() -> TransferConfig:
    """The managed transfer's settings for ``stream_write``: 8 MiB parts, at most 4 of them in memory.

    A non-seekable body has no size for s3transfer to fit its part size to, so the part size must
    be large enough on its own: 5 GiB is 640 parts of 8 MiB (S3 allows 10,000). Memory is bounded by
    the parts held (``max_in_memory_upload_chunks`` + the one being read: 40 MiB), which fits the
    download function's 512 MB beside the interpreter, boto3 and requests (about 100 MB).
    """
    from boto3.s3.transfer import TransferConfig

    part = 8 * 1024 * 1024
    config = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=4)
    # s3transfer's own setting (its default is 10 parts); boto3's constructor does not take it.
    config.max_in_memory_upload_chunks = 4
    return config


class _StreamAborted(Exception):
    """The writer of a stream_write gave up: the upload must fail (and so be aborted), never complete."""


_EOF = b""


class _Pipe:
    """A bounded hand-over of bytes from ``stream_write``'s block to s3transfer, read as a non-seekable file."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.upload: Future[None] | None = None
        self._pieces: queue.Queue[bytes] = queue.Queue(PIPE_CHUNKS)
        self._aborted = threading.Event()
        self._rest = b""
        self._ended = False

    # --- the writer's side (the block of stream_write) ---
    def write(self, data: bytes, /) -> int:
        """Hand ``data`` over, in pieces of at most CHUNK_SIZE; blocks while the pipe is full."""
        view = memoryview(data)
        for start in range(0, len(view), CHUNK_SIZE):
            self._put(bytes(view[start : start + CHUNK_SIZE]))
        return len(view)

    def finish(self) -> None:
        """The body is complete: the reader sees its end."""
        self._put(_EOF)

    def abort(self) -> None:
        """Make the reader raise: at its next read, or now if it waits for a piece."""
        self._aborted.set()
        with contextlib.suppress(queue.Full):  # a full pipe is being read: the reader sees the flag next
            self._pieces.put_nowait(_EOF)

    def _put(self, piece: bytes) -> None:
        while True:
            try:
                self._pieces.put(piece, timeout=0.1)
                return
            except queue.Full:
                # A reader that stopped reading failed (no bucket, access denied, the key exists): say why.
                if self.upload is not None and self.upload.done():
                    error = self.upload.exception()
                    if error is None:
                        raise StorageError(f"cannot write {self.uri}: the upload ended before the body") from None
                    raise _stream_error(error, self.uri) from error

    # --- s3transfer's side ---
    def readable(self) -> bool:
        """A readable file for s3transfer."""
        return True

    def seekable(self) -> bool:
        """Not seekable: s3transfer reads it part by part, in order, holding each part in memory."""
        return False

    def read(self, size: int | None = -1) -> bytes:
        """The next ``size`` bytes (all that is left when ``size`` is negative), fewer only at the end."""
        wanted = None if size is None or size < 0 else size
        parts, have = [], 0
        if self._rest:
            parts.append(self._rest)
            have = len(self._rest)
            self._rest = b""
        while (wanted is None or have < wanted) and not self._ended:
            piece = self._pieces.get()
            if self._aborted.is_set():
                raise _StreamAborted(f"the write of {self.uri} was abandoned; nothing is committed")
            if not piece:  # _EOF
                self._ended = True
                break
            parts.append(piece)
            have += len(piece)
        if wanted is not None and have > wanted:
            last = parts[-1]
            keep = len(last) - (have - wanted)
            parts[-1], self._rest = last[:keep], last[keep:]
        return b"".join(parts)


def _stream_error(exc: BaseException, uri: str) -> Exception:
    """What a failed stream_write upload raises: TargetExistsError, StorageUnavailableError or StorageError."""
    code = _error_code(exc)
    if code in _S3_EXISTS:
        return TargetExistsError(f"{uri} was written by someone else meanwhile")
    if code in _S3_IN_FLIGHT:
        # A stream cannot be sent again from here; the task's retry finds the other write's result.
        return StorageUnavailableError(f"cannot write {uri}: another conditional write of it is in flight ({code})")
    return storage_error(exc, f"cannot write {uri}")


class _ObjectReader(io.RawIOBase):
    """One S3 object as a seekable raw file over streamed GETs: a new, ranged GET after each seek.

    Every GET after the first is conditional on the first one's ETag, so two passes over an object
    never mix two versions; a stream that breaks off resumes from where it stopped (READ_ATTEMPTS).
    """

    def __init__(self, target: S3Target, *, etag: str | None = None, version_id: str | None = None) -> None:
        super().__init__()
        self._target = target
        self._position = 0
        self._size: int | None = None
        self._etag: str | None = etag
        self._pinned = etag is not None  # a read of one version asked for: another one is TargetChangedError
        self._version_id = version_id
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position}.get(whence)
        if base is None:
            base = self._known_size()  # SEEK_END
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        if base + offset != self._position:
            self._drop_body()
            self._position = base + offset
        return self._position

    def readinto(self, buffer: Any) -> int:
        from s3transfer.utils import S3_RETRYABLE_DOWNLOAD_ERRORS

        view = memoryview(buffer).cast("B")
        for attempt in range(1, READ_ATTEMPTS + 1):
            if self._size is not None and self._position >= self._size:
                return 0
            if self._body is None:
                self._open()
            try:
                data = self._body.read(len(view))
            except S3_RETRYABLE_DOWNLOAD_ERRORS as exc:
                self._drop_body()
                if attempt == READ_ATTEMPTS:
                    raise StorageUnavailableError(
                        f"cannot read {self._target.uri}: the stream broke off at byte {self._position} "
                        f"{READ_ATTEMPTS} times ({type(exc).__name__}: {exc})"
                    ) from exc
                continue
            view[: len(data)] = data
            self._position += len(data)
            return len(data)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._drop_body()
        super().close()

    def _known_size(self) -> int:
        if self._size is None:
            self._open()
        assert self._size is not None
        return self._size

    def _open(self) -> None:
        request: dict[str, Any] = {"Bucket": self._target.bucket, "Key": self._target.key}
        if self._position:
            request["Range"] = f"bytes={self._position}-"
        if self._etag:
            request["IfMatch"] = self._etag
        if self._version_id:
            request["VersionId"] = self._version_id
        try:
            response = self._target.client.get_object(**request)
        except Exception as exc:
            code = _error_code(exc)
            if code in {"InvalidRange", "416"}:  # at or beyond the end
                self._size = self._position
                self._body = io.BytesIO()
                return
            if self._pinned and code in _S3_EXISTS | _S3_MISSING | {"NoSuchVersion", "InvalidArgument"}:
                raise TargetChangedError(f"{self._target.uri} is no longer the version {self._etag} ({code})") from exc
            if code in _S3_EXISTS:
                raise StorageError(f"cannot read {self._target.uri}: it changed while it was read") from exc
            raise storage_error(exc, f"cannot read {self._target.uri}") from exc
        self._etag = self._etag or str(response["ETag"])
        content_range = str(response.get("ContentRange") or "")
        self._size = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else int(response["ContentLength"])
        self._body = response["Body"]

    def _drop_body(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
            self._body = None


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    code = str(response.get("Error", {}).get("Code", ""))
    status = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return code if code and not code.isdigit() else (code or status)


def _is_connection_error(exc: BaseException) -> bool:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import ReadTimeoutError

    return isinstance(exc, BotoConnectionError | ReadTimeoutError)


def storage_error(exc: BaseException, what: str) -> StorageError:
    """Translate a botocore failure into StorageError (or StorageUnavailableError) with advice."""
    code = _error_code(exc)
    if code == "NoSuchBucket":
        return StorageError(f"{what}: the bucket does not exist; create it (sam deploy does) or fix the URI")
    if code in {"AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
        return StorageError(f"{what}: access denied; the function's role may not use this bucket or prefix")
    if code in _S3_MISSING:
        return StorageError(f"{what}: the object does not exist")
    if code in _S3_TRANSIENT or _is_connection_error(exc):  # after the SDK's own retries
        return StorageUnavailableError(
            f"{what}: storage is unavailable after retries ({code or type(exc).__name__}: {exc})"
        )
    return StorageError(f"{what}: {code or type(exc).__name__}: {exc}")


def list_prefix(client: S3Client, bucket: str, prefix: str) -> list[StoredObject]:
    """Every object under ``s3://bucket/prefix`` (a folder: ``/`` is added), sorted by relative path.

    An empty prefix lists nothing; a missing bucket raises StorageError.
    """
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    found: list[StoredObject] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found.append(
                    StoredObject(
                        uri=f"s3://{bucket}/{item['Key']}",
                        relative=item["Key"][len(prefix) :],
                        size=int(item["Size"]),
                        modified=item["LastModified"].astimezone(dt.UTC).isoformat(timespec="seconds"),
                    )
                )
    except Exception as exc:
        raise storage_error(exc, f"cannot list s3://{bucket}/{prefix}") from exc
    return sorted(found, key=lambda o: o.relative)
