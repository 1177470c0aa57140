"""Targets for tests: each call makes a Store for this machine, so its S3 clients are made inside the test's moto."""

from __future__ import annotations

from mlpipe.storage import Store, Target


def target(uri: str) -> Target:
    """The target at ``uri`` (S3 or a local path), on a new ``Store.on_this_machine()``."""
    return Store.on_this_machine().target(uri)


def store() -> Store:
    """A new Store for this machine (local paths and S3)."""
    return Store.on_this_machine()
