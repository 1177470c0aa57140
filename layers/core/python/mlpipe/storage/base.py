"""The target contract, as in Luigi: an output either exists, complete and validated, or does not exist at all.

Two ways to write, both atomic: what is written becomes visible at the target only when the
``with`` block ends without an exception; on an exception nothing appears at all.

- ``atomic_write()`` yields a temporary ``w+b`` file the block may seek in and read back (a hidden
  file beside the target, or for S3 a local spool file in /tmp): for models, cards and lineage.
- ``stream_write()`` yields a write-only sink for a body too large to hold or spool (a dataset of
  up to 5 GiB), validated by the block while it writes (``mlpipe.storage.s3`` explains the S3 side).

By default the commit is conditional: if the target appeared in the meantime (another execution
for the same run date), nothing is overwritten and ``TargetExistsError`` is raised, which the tasks
report as "present". S3 gets that from ``If-None-Match: *`` on ``PutObject`` and
``CompleteMultipartUpload``; a local directory from ``link(2)``, which never replaces a file.

One contract suite (``tests/unit/test_targets.py``) runs against every backend.
"""

from __future__ import annotations

import contextlib
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import IO, Protocol

CHUNK_SIZE = 1024 * 1024


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
    def sibling(self, name: str) -> Target:
        """The target ``name`` in the same folder or prefix, in the same store (a model's card, a dataset's lineage)."""

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

    def sweep(self, *, empty_folders: int = 0) -> list[str]:
        """Remove what killed writes left beside this target; the URIs of what was removed.

        Locally: the hidden ``.partial`` spool files in its folder older than an hour (a live writer's
        is never that old), then its folder and the ones above it, up to ``empty_folders`` of them,
        where that left them empty. On S3 there is nothing to remove: an unfinished upload is never
        visible (the buckets' lifecycle rule aborts it).
        """
        return []

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


@dataclass(frozen=True)
class StoredObject:
    """An object found under a root: its URI, its path relative to the root, size and last change."""

    uri: str
    relative: str
    size: int
    modified: str  # ISO 8601, UTC
