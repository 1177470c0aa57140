"""Where the data comes from: an http(s) URL, an S3 object, or (in local runs) a file on this machine.

Three questions, asked of every source the same way:

- may the run read it (``check_source``): http(s) through the address guard of ``mlpipe.fetch``; an
  S3 object only under the deployment's source locations (``SourceLocations``; a
  local run without them reads any object its credentials can); a local path only in local runs;
- which version is it (``source_version``, by the plan): an S3 object's ETag and version id (a
  HEAD), an HTTP resource's strong ETag or Last-Modified (a HEAD), a local file's size and
  modification time. The version enters the dataset's identity, so new bytes under the same name
  make a new dataset and an unchanged source is "present";
- read it (``read_source``, by the download): exactly that version, decompressed (``mlpipe.compression``),
  through the same validation and atomic write as every source (``mlpipe.fetch.store_stream``).
  ``source_chunks`` reads it the same way without writing it (``pipeline contract diff``).

A local file's version is its size and modification time (nanoseconds), not a hash of its bytes:
the plan looks at it on every run, and hashing a large file there would read it twice per run; the
metadata is what ``make`` and ``rsync`` trust, and it errs towards a new identity (a ``touch`` retrains),
never towards keeping stale data. The bytes' sha256 is in the lineage all the same.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlpipe.compression import decoded, kind, read_chunks, zip_member
from mlpipe.dataset import DatasetStats, RowWatch
from mlpipe.description import DatasetDescription
from mlpipe.exceptions import (
    InvalidRequestError,
    SourceChangedError,
    SourceNotReadyError,
    StorageError,
    TargetChangedError,
)
from mlpipe.fetch import (
    DownloadProgress,
    FetchPolicy,
    check_source_url,
    fetch_dataset,
    http_chunks,
    http_version,
    store_stream,
)
from mlpipe.redaction import redact_url
from mlpipe.storage import S3Target, Store, Target, parse_uri
from mlpipe.storage.uris import LOCAL_SCHEME, S3_SCHEME, scheme_of

HTTP = "http"
S3 = "s3"
LOCAL = "local"


def source_kind(url: str) -> str:
    """``http`` (http and https), ``s3``, or ``local`` (``file://`` or a plain path); else InvalidRequestError."""
    scheme = scheme_of(url)
    if scheme in {"http", "https"}:
        return HTTP
    if scheme == S3_SCHEME:
        return S3
    if scheme in {LOCAL_SCHEME, ""}:
        return LOCAL
    raise InvalidRequestError(
        f"source URL {redact_url(url)!r}: scheme {scheme!r} is not allowed; use an http(s):// URL, "
        "s3://bucket/key, or (in local runs) a path"
    )


def source_locations(value: str) -> tuple[str, ...]:
    """The allowed S3 source locations as ``s3://bucket/prefix``, from the deployment's SourceLocations: comma-separated
    ``bucket/prefix`` entries (``s3://`` optional; ``bucket/`` is the whole bucket); () when empty."""
    found = []
    for given in (value or "").split(","):
        entry = given.strip().removeprefix("s3://")
        if not entry:
            continue
        if "/" not in entry or "*" in entry:
            raise InvalidRequestError(
                f"SOURCE_LOCATIONS entry {entry!r} must be bucket/prefix (bucket/ for the whole bucket), without '*'"
            )
        uri = f"s3://{entry}"
        parse_uri(uri)  # a valid bucket name and key
        found.append(uri)
    return tuple(dict.fromkeys(found))


def check_source(url: str, *, local_run: bool, allow_loopback: bool, locations: Sequence[str] = ()) -> None:
    """InvalidRequestError unless the run may read ``url`` (see the module); the message says what is allowed."""
    found = source_kind(url)
    if found == HTTP:
        check_source_url(url, allow_loopback=allow_loopback)
        return
    if found == LOCAL:
        if not local_run:
            raise InvalidRequestError(
                f"source {url!r} is a local path: in AWS a function's disk is its own, private and temporary, and "
                "holds no data of yours; put the file in S3 (s3://bucket/key under SourceLocations) or serve it "
                "over https"
            )
        parse_uri(url)
        return
    parse_uri(url)
    if not locations:
        if local_run:
            return  # the user's own credentials decide; the allow-list belongs to a deployment
        raise InvalidRequestError(
            f"source {url!r}: this deployment reads no S3 source; deploy with SourceLocations (bucket/prefix) "
            "naming where the data is"
        )
    if not any(url.startswith(location) for location in locations):
        raise InvalidRequestError(
            f"source {url!r} is outside the S3 locations this deployment may read ({', '.join(locations)}); "
            "move the data there, or deploy with SourceLocations naming its location"
        )


def source_version(url: str, *, store: Store, policy: FetchPolicy) -> dict[str, Any] | None:
    """The version of the source the run reads (see the module), None where there is none to know.

    A source that is not there is SourceNotReadyError (a missing S3 object or local file, an HTTP 404).
    """
    found = source_kind(url)
    if found == HTTP:
        return http_version(url, policy)
    if found == S3:
        target = store.target(url)
        assert isinstance(target, S3Target)
        # The roles may read the source locations but not list them: S3 says 403 for a missing key then.
        try:
            head = target.head(denied_is_missing=True)
        except StorageError:
            if target.bucket_missing():  # S3's HeadObject may say NoSuchBucket, or only 404 as for a missing key
                raise _no_bucket(url, target) from None
            raise
        if head is None and target.bucket_missing():
            raise _no_bucket(url, target)
        if head is None:
            raise SourceNotReadyError(
                f"source {url} is not there (no such object; S3 answers 403 for a key that is missing where the "
                "role may not list); check the key (and its {run_date}), or deploy with SourceWaitSeconds to wait "
                "for data that arrives late"
            )
        return head
    return _local_version(_local_path(url))


def _no_bucket(url: str, target: S3Target) -> InvalidRequestError:
    return InvalidRequestError(
        f"source {url}: there is no bucket {target.bucket!r}; check the bucket's name in the source URL (a run "
        "waits for an object that has not arrived, never for a bucket)"
    )


def _local_path(url: str) -> Path:
    return Path(parse_uri(url)[1])


def _local_version(path: Path) -> dict[str, Any]:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SourceNotReadyError(
            f"source {path} is not there (no such file); check the path, or create the file and run again"
        ) from None
    except OSError as exc:
        raise InvalidRequestError(f"source {path} cannot be read: {exc.strerror}; check the path") from None
    if stat.S_ISDIR(info.st_mode):
        raise InvalidRequestError(f"source {path} is a directory; name the CSV file in it")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidRequestError(f"source {path} is not a regular file; name a CSV file")
    if not os.access(path, os.R_OK):
        raise InvalidRequestError(
            f"source {path} is not readable by this user; check its permissions (chmod u+r) and run again"
        )
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}


def read_source(
    url: str,
    target: Target,
    *,
    store: Store,
    policy: FetchPolicy,
    description: DatasetDescription,
    version: Mapping[str, Any] | None,
    watch: RowWatch | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> DatasetStats:
    """Read the source into ``target``, validated (see the module; ``watch`` sees every row): the version the plan
    named, else SourceChangedError with nothing written."""
    found = source_kind(url)
    if found == HTTP:
        return fetch_dataset(url, target, policy, description=description, version=version, watch=watch, clock=clock)
    with _stored_body(url, found, store, version, clock) as (shown, chunks, progress, unchanged):
        try:
            return store_stream(
                chunks,
                target,
                shown=shown,
                policy=policy,
                description=description,
                progress=progress,
                check=unchanged,
                watch=watch,
            )
        except TargetChangedError as exc:
            raise _changed(url, str(exc)) from exc


@contextlib.contextmanager
def source_chunks(
    url: str,
    *,
    store: Store,
    policy: FetchPolicy,
    version: Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[tuple[str, Iterator[bytes]]]:
    """``(the source's name for messages, its bytes)``, read as ``read_source`` reads them (redirects followed through
    the address guard, gzip decompressed, the one file of a zip) but written nowhere; over HTTP in one attempt.
    ``version`` (default: the current one) is the version to read, else SourceChangedError."""
    found = source_kind(url)
    if found == HTTP:
        with http_chunks(url, policy, version=version, clock=clock) as (chunks, _, check):
            yield redact_url(url), _checked(chunks, check)
        return
    with _stored_body(url, found, store, version, clock) as (shown, chunks, _, unchanged):
        yield shown, _checked(_changed_is_source_changed(url, chunks), unchanged)


def _checked(chunks: Iterator[bytes], check: Callable[[], None]) -> Iterator[bytes]:
    for chunk in chunks:
        check()
        yield chunk
    check()


def _changed_is_source_changed(url: str, chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from chunks
    except TargetChangedError as exc:
        raise _changed(url, str(exc)) from exc


@contextlib.contextmanager
def _stored_body(
    url: str, found: str, store: Store, version: Mapping[str, Any] | None, clock: Callable[[], float]
) -> Iterator[tuple[str, Iterator[bytes], DownloadProgress, Callable[[], None]]]:
    """An S3 object's or a local file's name for messages, decompressed chunks, progress and unchanged-check."""
    shown = redact_url(url)
    with _open(url, found, store, version) as (handle, total, unchanged):
        progress = DownloadProgress(total, clock)
        if kind(handle.peek(4)[:4]) == "zip":
            name, member = zip_member(handle, shown)
            shown, chunks = f"{shown}!{name}", read_chunks(member, f"{shown}!{name}")
        else:
            chunks = decoded(read_chunks(handle, shown), shown)
        yield shown, chunks, progress, unchanged


@contextlib.contextmanager
def _open(
    url: str, found: str, store: Store, version: Mapping[str, Any] | None
) -> Iterator[tuple[Any, int | None, Callable[[], None]]]:
    """An open, seekable, peekable handle on the source's named version, its size, and a check that it is unchanged."""
    if found == S3:
        target = store.target(url)
        assert isinstance(target, S3Target)
        head: dict[str, Any] | None = dict(version or {}) or target.head()
        if head is None:
            raise SourceNotReadyError(f"source {url} is not there any more (no such object); check the key")
        with target.open_version(str(head["etag"]), head.get("version_id")) as handle:
            try:
                handle.peek(1)  # the first GET: the named version, or TargetChangedError now
            except TargetChangedError as exc:
                raise _changed(url, str(exc)) from exc
            yield handle, None, lambda: None
        return
    path = _local_path(url)
    named: dict[str, Any] = dict(version or {}) or _local_version(path)
    with _open_local(path) as handle:

        def unchanged() -> None:
            now = _local_version(path)
            if now != named:
                raise _changed(url, f"size and modification time {now} are not the plan's {named}")

        unchanged()
        yield handle, int(named["size"]), unchanged


@contextlib.contextmanager
def _open_local(path: Path) -> Iterator[io.BufferedReader]:
    try:
        handle = path.open("rb")
    except IsADirectoryError:
        raise InvalidRequestError(f"source {path} is a directory; name the CSV file in it") from None
    except PermissionError:
        raise InvalidRequestError(f"source {path} is not readable by this user; check its permissions") from None
    except FileNotFoundError:
        raise SourceNotReadyError(f"source {path} is not there any more (no such file)") from None
    with handle:
        yield handle


def _changed(url: str, why: str) -> SourceChangedError:
    return SourceChangedError(
        f"source {redact_url(url)} changed since the run was planned ({why}); nothing was written. The state machine "
        "plans the run again, which names the new version (a new dataset identity)"
    )
