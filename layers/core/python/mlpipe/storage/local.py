"""A local directory as a store: ``LocalTarget`` and the listing of a directory (local runs only).

Writes go to a hidden ``.partial`` file beside the target, then ``link(2)`` (never replaces: the
local ``If-None-Match``) or ``rename(2)``; a failed write leaves nothing, not even the directories
it made. The champion's compare-and-swap is a rename under a lock file only one writer can create.

A killed process cleans nothing up: its ``.<name>.<random>.partial`` file stays, with the folders
made for it. Nothing reads such a file (a listing leaves hidden files out, ``exists()`` looks at the
target's own name), and the next write to that folder removes the ones older than
``STALE_PARTIAL_SECONDS`` (``remove_stale_partials``), as the next run's plan does for its targets'
folders (``LocalTarget.sweep``, which also removes the folders left empty). A live writer's spool
file is younger than that: a write that makes no progress for an hour has failed on its own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from mlpipe.exceptions import StorageError, TargetChangedError, TargetExistsError
from mlpipe.storage.base import Sink, StoredObject, Target

LOCK_WAIT_SECONDS = 10.0
LOCK_STALE_SECONDS = 30.0
STALE_PARTIAL_SECONDS = 3600.0
# The spool file's name: tempfile's ".<name>.<8 random characters>.partial".
PARTIAL_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.partial$")
CREATE_ATTEMPTS = 3


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
            handle = self._spool()
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

    def _spool(self) -> IO[bytes]:
        """A new hidden ``.partial`` file beside the target, in its folder (made if missing), after removing the
        stale ones there. A folder removed meanwhile (by a sweep that found it empty) is made again."""
        for attempt in range(CREATE_ATTEMPTS):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_partials(self.path.parent)
            try:
                return tempfile.NamedTemporaryFile(
                    dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".partial", delete=False
                )
            except FileNotFoundError:
                if attempt == CREATE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def sweep(self, *, empty_folders: int = 0) -> list[str]:
        removed = [path.as_uri() for path in remove_stale_partials(self.path.parent)]
        folder = self.path.parent
        for _ in range(empty_folders):
            try:
                folder.rmdir()  # only an empty folder: never one another write has put a file in
            except OSError:
                break
            removed.append(folder.as_uri())
            folder = folder.parent
        return removed

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

    def sibling(self, name: str) -> LocalTarget:
        return LocalTarget(self.path.with_name(name))

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


def remove_stale_partials(directory: Path, *, older_than: float = STALE_PARTIAL_SECONDS) -> list[Path]:
    """Remove the spool files (``.<name>.<random>.partial``) in ``directory`` last changed more than ``older_than``
    seconds ago, left by killed writes; the paths removed. Anything else, and a younger spool file (perhaps a
    concurrent writer's), is left alone; a file another sweep removed first is skipped."""
    removed = []
    now = time.time()
    try:
        with os.scandir(directory) as entries:
            names = [entry for entry in entries if PARTIAL_RE.match(entry.name)]
    except OSError:  # missing, or not readable: nothing to remove here
        return []
    for entry in names:
        try:
            info = entry.stat(follow_symlinks=False)
            if entry.is_file(follow_symlinks=False) and now - info.st_mtime > older_than:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


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


def list_directory(base: Path) -> list[StoredObject]:
    """Every complete file under ``base``, sorted by relative path; hidden ones (a ``.partial`` spool) left out.

    A missing directory lists nothing.
    """
    if not base.is_dir():
        return []
    found: list[StoredObject] = []
    for path in base.rglob("*"):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(base).parts):
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed since it was found
                continue
            found.append(
                StoredObject(
                    uri=path.as_uri(),
                    relative=path.relative_to(base).as_posix(),
                    size=stat.st_size,
                    modified=dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC).isoformat(timespec="seconds"),
                )
            )
    return sorted(found, key=lambda o: o.relative)
