"""Lineage: beside every output, what made it (its identity and inputs), from which input targets, when and by whom.

The dataset's record is ``lineage.json`` beside ``dataset.csv``; a model's and a published model's
are the ``lineage`` and ``publication`` sections of its card (``metrics.json``). Together they
trace a published model back to the exact dataset bytes (URI and sha256) and parameters that made
it, and to the executions that made each step.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import platform
from typing import Any

from mlpipe.dataset import DatasetStats
from mlpipe.description import DatasetDescription
from mlpipe.exceptions import StorageError, TargetExistsError
from mlpipe.redaction import redact_url
from mlpipe.storage import Target
from mlpipe.version import __version__

LOG = logging.getLogger(__name__)

LINEAGE_FILE = "lineage.json"


def lineage_record(
    identity: dict[str, Any] | None,
    *,
    execution_id: str | None,
    input_targets: list[dict[str, Any]],
    output: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One output's lineage: ``identity`` (``{"identity", "inputs"}`` from the plan), its input targets
    (``{"uri", "sha256"}``), the output itself, the execution, the time and the versions.

    An input target's URI is recorded without its secrets (``mlpipe.redaction``): a source URL's
    ``user:password@`` or signature never reaches the record."""
    identity = identity or {}
    return {
        "identity": identity.get("identity"),
        "inputs": identity.get("inputs"),
        "input_targets": [
            entry | {"uri": redact_url(entry["uri"])} if isinstance(entry.get("uri"), str) else entry
            for entry in input_targets
        ],
        "output": output,
        "execution_id": execution_id,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
        "versions": {"mlpipe": __version__, "python": platform.python_version()},
    }


def write_lineage(target: Target, record: dict[str, Any]) -> None:
    """Write ``record`` to ``target`` (a lineage.json) unless a concurrent writer of the same output got there first."""
    with contextlib.suppress(TargetExistsError):
        target.write_bytes((json.dumps(record, indent=2, sort_keys=True, allow_nan=False) + "\n").encode())


def known_stats(dataset: Target, description: DatasetDescription) -> DatasetStats | None:
    """What the download's check found in ``dataset``, from its lineage.json, if it checked it as ``description``.

    None when there is no such record (a dataset from before the record, or from elsewhere), it
    cannot be read, or the description differs: then training validates the file itself.
    """
    lineage = dataset.sibling(LINEAGE_FILE)
    try:
        if not lineage.exists():
            return None
        checked = json.loads(lineage.read_bytes())["output"]["checked"]
        if checked["description"] != description.to_dict():
            return None
        return DatasetStats.from_dict(checked["stats"])
    except (StorageError, ValueError, KeyError, TypeError) as exc:
        LOG.warning("cannot use %s (%s): training validates the dataset itself", lineage.uri, exc)
        return None
