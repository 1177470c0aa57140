"""The Store: made once (from Settings in a function, for this machine in the CLI), handed to whatever reads or writes.

It holds the two things every storage call depends on, so that no caller passes them by hand:

- the local-path policy: in AWS a function's disk is private and temporary, so only S3 makes sense
  there, and a local path is refused (``InvalidRequestError``); local runs allow both;
- the S3 clients (``S3Clients``, made on first use; inject a factory to use other ones).

It gives targets (``target``), joins URIs (``join``) and lists what is under a root
(``list``), as Luigi's ``FileSystemTarget`` hands its work to its ``fs``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mlpipe.exceptions import InvalidRequestError
from mlpipe.storage.base import StoredObject, Target
from mlpipe.storage.local import LocalTarget, list_directory
from mlpipe.storage.s3 import S3Clients, S3Target, list_prefix
from mlpipe.storage.uris import S3_SCHEME, join_uri, parse_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class LocalPolicy(Protocol):
    """What ``Store.from_settings`` reads of the settings."""

    @property
    def allow_local_storage(self) -> bool:
        """Whether local paths may be used (local runs only)."""
        ...


class Store:
    """Where targets live: S3, and a local directory when ``allow_local``; one per process or command."""

    def __init__(self, *, allow_local: bool, s3_client_factory: Callable[[], S3Client] | None = None) -> None:
        self.allow_local = allow_local
        self.s3 = S3Clients(s3_client_factory)

    @classmethod
    def from_settings(cls, settings: LocalPolicy) -> Store:
        """The store a function uses: local paths only where the settings allow them (the local runner)."""
        return cls(allow_local=settings.allow_local_storage)

    @classmethod
    def on_this_machine(cls) -> Store:
        """The store of a command run by a person on their machine (the CLI, a consumer): local paths and S3."""
        return cls(allow_local=True)

    def check(self, uri: str) -> tuple[str, str]:
        """``("s3", "bucket/key")`` or ``("file", "/abs/path")``; InvalidRequestError for a bad URI or a
        local path this store does not allow."""
        scheme, location = parse_uri(uri)
        if scheme != S3_SCHEME and not self.allow_local:
            raise InvalidRequestError(f"storage URI {uri!r} is a local path; in AWS use s3://bucket/prefix")
        return scheme, location

    def target(self, uri: str) -> Target:
        """The target at ``uri`` (``s3://bucket/key``, ``file:///path`` or a path), checked as ``check`` does."""
        scheme, location = self.check(uri)
        if scheme == S3_SCHEME:
            bucket, _, key = location.partition("/")
            return S3Target(bucket, key, self.s3)
        return LocalTarget(location)

    def join(self, base: str, *parts: str) -> str:
        """``base`` (a prefix URI) with ``parts`` appended as path segments."""
        self.check(base)
        return join_uri(base, *parts)

    def list(self, root: str) -> list[StoredObject]:
        """Every complete object under ``root`` (a prefix URI or a directory), sorted by relative path.

        Hidden local files (a write's ``.partial`` spool) are left out. A missing directory or an
        empty prefix lists nothing; a missing bucket raises StorageError.
        """
        scheme, location = self.check(root)
        if scheme == S3_SCHEME:
            bucket, _, prefix = location.partition("/")
            return list_prefix(self.s3.plain, bucket, prefix)
        return list_directory(Path(location))

    def __repr__(self) -> str:
        return f"Store(allow_local={self.allow_local})"
