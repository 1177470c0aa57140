"""Luigi-style targets: an output that either exists, complete and validated, or does not exist at all.

Two stores share one contract (``tests/unit/test_targets.py`` runs the same suite on both):

- ``LocalTarget`` for a path on this machine (``/abs/path`` or ``file:///abs/path``);
- ``S3Target`` for ``s3://bucket/key``.

Two ways to write, both atomic: what is written becomes visible at the target only when the
``with`` block ends without an exception; on an exception nothing appears at all.

- ``atomic_write()`` yields a temporary ``w+b`` file the block may seek in and read back (a hidden
  file beside the target, or for S3 a local spool file in /tmp): for models, cards and lineage.
- ``stream_write()`` yields a write-only sink for a body too large to hold or spool (a dataset of
  up to 5 GiB), validated by the block while it writes. Locally it is the same hidden ``.partial``
  file, linked at the end. On S3 nothing touches /tmp: the sink is a bounded pipe that boto3's
  managed transfer (``upload_fileobj`` with ``STREAM_TRANSFER``, on a thread of its own) reads as a
  non-seekable file, so the body goes up as a multipart upload while the block is still writing.
  The end of the body (EOF on the pipe) is only given when the block ended without an exception:
  whatever the block checks last (the validator's end-of-file checks) is checked before s3transfer
  can send CompleteMultipartUpload. An exception in the block makes the pipe's ``read`` raise, and
  s3transfer then aborts the multipart upload (its CreateMultipartUpload task registers
  AbortMultipartUpload as a failure cleanup, run when the transfer fails:
  ``s3transfer/tasks.py``). Memory: at most ``STREAM_TRANSFER.max_in_memory_upload_chunks`` parts
  of ``multipart_chunksize`` in s3transfer's hands plus the one being filled, and
  ``PIPE_CHUNKS`` pieces of at most ``CHUNK_SIZE`` in the pipe: about 48 MiB, whatever the size.
  With 8 MiB parts S3's 10,000 parts hold 78 GiB, well beyond the 5 GiB a source may have.

The validator could not be the pipe's reader instead: it reads with the standard library's
``csv`` module, which pulls lines and cannot be fed chunk by chunk, and s3transfer pulls too; one
of the two has to run on another thread, and s3transfer already reads its body on its own.

By default the commit is conditional: if the target appeared in the meantime (another execution
for the same run date), nothing is overwritten and ``TargetExistsError`` is raised, which the tasks
report as "present". S3 gets that from ``If-None-Match: *`` on ``PutObject`` and
``CompleteMultipartUpload``; a local directory from ``link(2)``, which never replaces a file.

Reads stream too: ``S3Target.open_read()`` is a seekable reader over GETs (a seek starts a new
ranged GET from there, checked against the first one's ETag), so a caller that reads a dataset
twice (validation, then pandas) needs neither /tmp nor memory for the object.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import os
import queue
import re
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlsplit

from mlpipe.exceptions import (
    InvalidRequestError,
    StorageError,
    StorageUnavailableError,
    TargetChangedError,
    TargetExistsError,
)

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig
    from mypy_boto3_s3 import S3Client

CHUNK_SIZE = 1024 * 1024
# stream_write's pipe holds at most this many pieces of at most CHUNK_SIZE between the writer and s3transfer.
PIPE_CHUNKS = 8
# A streamed read resumes (a ranged GET from where it broke) this many times before it fails.
READ_ATTEMPTS = 3
# Bucket naming rules: https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
_BUCKET_RE = re.compile(r"^(?!xn--)(?!sthree-)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_S3_MISSING = {"404", "NoSuchKey", "NotFound"}
_S3_EXISTS = {"412", "PreconditionFailed"}
_S3_IN_FLIGHT = {"409", "ConditionalRequestConflict"}
CONFLICT_ATTEMPTS = 4
LOCK_WAIT_SECONDS = 10.0
LOCK_STALE_SECONDS = 30.0
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


class Sink(Protocol):
    """What ``stream_write`` yields: a binary file that can only be written to."""

    def write(self, data: bytes, /) -> int:
        """Write ``data``; return its length."""
        ...


class Target(ABC):
    """An output location: ``exists()``, streamed reads, and an atomic, by default conditional, write."""

    uri: str

    @abstractmethod
    def exists(self) -> bool:
        """True when the object is there; a missing object is False, any other failure raises StorageError."""

    @abstractmethod
    def open_read(self) -> contextlib.AbstractContextManager[IO[bytes]]:
        """Open the object for streamed binary reading; MissingInput is raised by callers, not here."""

    @abstractmethod
    def atomic_write(
        self, *, overwrite: bool = False, metadata: dict[str, str] | None = None
    ) -> contextlib.AbstractContextManager[IO[bytes]]:
        """Yield a temporary binary file; publish it at the target only if the block ends without error.

        The file is opened ``w+b``, so the block may seek back and validate what it wrote before the
        commit. Without ``overwrite`` an existing target is never replaced: ``TargetExistsError``.
        """

    @abstractmethod
    def stream_write(
        self, *, overwrite: bool = False, metadata: dict[str, str] | None = None
    ) -> contextlib.AbstractContextManager[Sink]:
        """Yield a write-only sink whose bytes go to the target as they are written, never to a spool file.

        They become visible at the target only if the block ends without an exception (so a check the
        block makes after its last write still decides); an exception leaves nothing, not even an
        incomplete multipart upload. Memory stays flat in the size (see the module's docstring).
        Without ``overwrite`` an existing target is never replaced: ``TargetExistsError``.
        """

    @abstractmethod
    def check_location(self) -> None:
        """Raise StorageError when the target's bucket or directory does not exist or cannot be used."""

    @abstractmethod
    def delete(self) -> None:
        """Remove the object if it exists (used by tests and by operators resetting a run)."""

    @abstractmethod
    def read_versioned(self) -> tuple[bytes | None, str | None]:
        """The object's bytes and a version token (None, None when it does not exist), for ``replace_if``."""

    @abstractmethod
    def replace_if(self, data: bytes, version: str | None) -> None:
        """Write ``data`` only if the object is still at ``version`` (None: only if it does not exist).

        A compare-and-swap: TargetChangedError when someone else wrote it since it was read.
        """

    def read_bytes(self) -> bytes:
        """The whole object; only for small objects such as metrics.json."""
        with self.open_read() as handle:
            return handle.read()

    def write_bytes(self, data: bytes, *, overwrite: bool = False, metadata: dict[str, str] | None = None) -> None:
        """Atomically write ``data`` (conditionally unless ``overwrite``)."""
        with self.atomic_write(overwrite=overwrite, metadata=metadata) as handle:
            handle.write(data)

    def sha256(self) -> str:
        """Hex sha256 of the stored object, streamed."""
        with self.open_read() as handle:
            return sha256_of(handle)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


def sha256_of(handle: IO[bytes]) -> str:
    """Hex sha256 of a binary file read from its current position to the end, in chunks."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
        digest.update(chunk)
    return digest.hexdigest()


# --- local directory ----------------------------------------------------------------------------
class LocalTarget(Target):
    """A file on this machine; writes go to a hidden ``.partial`` file beside it, then ``link``/``replace``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self.uri = self.path.as_uri()

    def exists(self) -> bool:
        try:
            return self.path.is_file()
        except OSError as exc:  # e.g. a permission error on a parent directory
            raise StorageError(f"cannot check {self.uri}: {exc}") from exc

    @contextlib.contextmanager
    def open_read(self) -> Iterator[IO[bytes]]:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError as exc:
            raise StorageError(f"{self.uri} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {self.uri}: {exc}") from exc
        with handle:
            yield handle

    @contextlib.contextmanager
    def atomic_write(self, *, overwrite: bool = False, metadata: dict[str, str] | None = None) -> Iterator[IO[bytes]]:
        created = _missing_directories(self.path.parent)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in the finally below
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".partial", delete=False
            )
        except OSError as exc:
            _remove_empty(created)
            raise StorageError(
                f"cannot write under {self.path.parent.as_uri()}: {exc}; check the artifact "
                "root or publish URI and the directory's permissions"
            ) from exc
        tmp = Path(handle.name)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make published models unreadable to others
        committed = False
        try:
            with handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            self._commit(tmp, overwrite=overwrite)
            committed = True
        finally:
            tmp.unlink(missing_ok=True)
            if not committed:  # a failed write leaves nothing behind, not even the directories it made
                _remove_empty(created)

    def stream_write(
        self, *, overwrite: bool = False, metadata: dict[str, str] | None = None
    ) -> contextlib.AbstractContextManager[Sink]:
        # The hidden .partial file beside the target is already a stream: nothing is spooled elsewhere.
        return self.atomic_write(overwrite=overwrite, metadata=metadata)

    def _commit(self, tmp: Path, *, overwrite: bool) -> None:
        try:
            if overwrite:
                os.replace(tmp, self.path)
            else:
                os.link(tmp, self.path)  # fails with EEXIST instead of replacing: the local If-None-Match
        except FileExistsError as exc:
            raise TargetExistsError(f"{self.uri} was written by someone else meanwhile") from exc
        except OSError as exc:
            raise StorageError(f"cannot write {self.uri}: {exc}") from exc

    def check_location(self) -> None:
        ancestor = self.path.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise StorageError(
                f"cannot write {self.uri}: {ancestor} is not a directory; fix the artifact root or publish URI"
            )
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise StorageError(f"cannot write {self.uri}: {ancestor} is not writable")

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)

    def read_versioned(self) -> tuple[bytes | None, str | None]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            raise StorageError(f"cannot read {self.uri}: {exc}") from exc
        return data, hashlib.sha256(data).hexdigest()

    def replace_if(self, data: bytes, version: str | None) -> None:
        # The swap is a rename under a lock file that only one writer can create (O_EXCL); a lock
        # older than LOCK_STALE_SECONDS was left by a killed writer and is broken.
        lock = self.path.with_name(f".{self.path.name}.lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - lock.stat().st_mtime > LOCK_STALE_SECONDS:
                        # Broken by a rename, which only one of several waiters can win.
                        stale = lock.with_name(f"{lock.name}.stale-{os.getpid()}-{time.monotonic_ns()}")
                        os.rename(lock, stale)
                        stale.unlink()
                        continue
                if time.monotonic() > deadline:
                    raise StorageError(f"cannot write {self.uri}: {lock} is held by another writer") from None
                time.sleep(0.01)
        try:
            os.close(fd)
            if self.read_versioned()[1] != version:
                raise TargetChangedError(f"{self.uri} changed since it was read")
            with self.atomic_write(overwrite=True) as handle:
                handle.write(data)
        finally:
            lock.unlink(missing_ok=True)


def _missing_directories(directory: Path) -> list[Path]:
    """``directory`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return missing


def _remove_empty(directories: list[Path]) -> None:
    """Remove the directories (deepest first) that are still empty; one another write filled is kept."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return


# --- S3 -----------------------------------------------------------------------------------------
class S3Target(Target):
    """An S3 object: ``atomic_write`` spools to /tmp, ``stream_write`` streams; both go up with boto3's managed
    transfer. Reads stream."""

    def __init__(self, bucket: str, key: str) -> None:
        self.bucket = bucket
        self.key = key
        self.uri = f"s3://{bucket}/{key}"

    @property
    def client(self) -> S3Client:
        return s3_client()

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
    def atomic_write(self, *, overwrite: bool = False, metadata: dict[str, str] | None = None) -> Iterator[IO[bytes]]:
        with tempfile.NamedTemporaryFile() as spool:
            yield spool
            spool.flush()
            client = s3_client(conditional=not overwrite)
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
        client = s3_client(conditional=not overwrite)
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

    def __init__(self, target: S3Target) -> None:
        super().__init__()
        self._target = target
        self._position = 0
        self._size: int | None = None
        self._etag: str | None = None
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
        try:
            response = self._target.client.get_object(**request)
        except Exception as exc:
            code = _error_code(exc)
            if code in {"InvalidRange", "416"}:  # at or beyond the end
                self._size = self._position
                self._body = io.BytesIO()
                return
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


@cache
def s3_client(conditional: bool = False) -> S3Client:
    """The process-wide S3 client, in the SDK's standard retry mode (throttling and 5xx are retried).

    With ``conditional``, a second client whose PutObject and CompleteMultipartUpload only create,
    never replace: s3transfer does not accept ``IfNoneMatch`` in ``ExtraArgs``, so the header is
    added to the two operations that make an object visible, on every call through that client.
    """
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", config=Config(retries={"mode": "standard", "total_max_attempts": 5}))
    if conditional:
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


# --- URIs ---------------------------------------------------------------------------------------
def target_for(uri: str, *, allow_local: bool = True) -> Target:
    """The target for ``s3://bucket/key``, ``file:///path`` or a plain local path.

    Raises InvalidRequestError for anything else, or for a local path when ``allow_local`` is False
    (in AWS a function's disk is private and temporary, so only S3 makes sense there).
    """
    scheme, location = split_uri(uri, allow_local=allow_local)
    if scheme == "s3":
        bucket, _, key = location.partition("/")
        return S3Target(bucket, key)
    return LocalTarget(location)


def split_uri(uri: str, *, allow_local: bool = True) -> tuple[str, str]:
    """Validate a storage URI and return ``("s3", "bucket/key")`` or ``("file", "/abs/path")``."""
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidRequestError(f"storage URI {uri!r} is empty or not a string; use s3://bucket/prefix")
    if any(ch in uri for ch in "\r\n\t\x00"):
        raise InvalidRequestError(f"storage URI {uri!r} contains control characters")
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise InvalidRequestError(f"storage URI {uri!r} is not a valid URI: {exc}") from exc
    if parts.scheme == "s3":
        bucket, key = parts.netloc, parts.path.lstrip("/")
        if not _BUCKET_RE.match(bucket):
            raise InvalidRequestError(f"storage URI {uri!r}: {bucket!r} is not a valid S3 bucket name")
        if parts.query or parts.fragment:
            raise InvalidRequestError(f"storage URI {uri!r}: query strings and fragments are not allowed")
        if "//" in key or any(seg in {".", ".."} for seg in key.split("/")):
            raise InvalidRequestError(f"storage URI {uri!r}: the key has an empty, '.' or '..' segment")
        return "s3", f"{bucket}/{key}"
    if parts.scheme in {"", "file"} and not (parts.scheme == "" and ":" in uri.split("/", maxsplit=1)[0]):
        if not allow_local:
            raise InvalidRequestError(f"storage URI {uri!r} is a local path; in AWS use s3://bucket/prefix")
        path = parts.path if parts.scheme == "file" else uri
        if parts.scheme == "file" and parts.netloc not in {"", "localhost"}:
            raise InvalidRequestError(f"storage URI {uri!r}: file URIs must not name a host")
        return "file", str(Path(path).expanduser().absolute())
    raise InvalidRequestError(
        f"storage URI {uri!r} has the unsupported scheme {parts.scheme!r}; use s3://bucket/prefix or a local directory"
    )


def join_uri(base: str, *parts: str, allow_local: bool = True) -> str:
    """``base`` (a prefix URI) with ``parts`` appended as path segments, normalised."""
    scheme, location = split_uri(base, allow_local=allow_local)
    tail = "/".join(p.strip("/") for p in parts if p.strip("/"))
    if scheme == "s3":
        return f"s3://{location.rstrip('/')}/{tail}"
    return Path(location, tail).as_uri()


# --- listing --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredObject:
    """An object found under a root: its URI, its path relative to the root, size and last change."""

    uri: str
    relative: str
    size: int
    modified: str  # ISO 8601, UTC


def list_under(root: str, *, allow_local: bool = True) -> list[StoredObject]:
    """Every complete object under ``root`` (a prefix URI or a directory), sorted by relative path.

    Hidden files (a local write's ``.partial`` spool) are left out. A missing directory or an empty
    prefix lists nothing; a missing bucket raises StorageError.
    """
    scheme, location = split_uri(root, allow_local=allow_local)
    found: list[StoredObject] = []
    if scheme == "s3":
        bucket, _, prefix = location.partition("/")
        prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
        try:
            pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
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
    base = Path(location)
    if not base.is_dir():
        return []
    for path in base.rglob("*"):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(base).parts):
            stat = path.stat()
            found.append(
                StoredObject(
                    uri=path.as_uri(),
                    relative=path.relative_to(base).as_posix(),
                    size=stat.st_size,
                    modified=dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC).isoformat(timespec="seconds"),
                )
            )
    return sorted(found, key=lambda o: o.relative)
