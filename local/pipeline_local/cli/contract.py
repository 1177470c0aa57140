"""``pipeline contract show|diff``: the champion's data contract, and a file checked against it without a run.

``diff`` reads the file as the download would (the dataset description's flags, the same streaming
validation and sketch, ``mlpipe.contract.DataWatch``) but collects every difference instead of stopping at
the first, and measures drift; nothing is written. Exit status 1 when the file's schema differs from
the contract (the download would refuse it) or a feature drifts more than ``--max-drift``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator

import requests

from mlpipe.champion import read_champion
from mlpipe.contract import DataWatch, contract_for, contract_uri, format_contract, format_drift
from mlpipe.dataset import validate_dataset
from mlpipe.description import DatasetDescription
from mlpipe.exceptions import PipelineError, SourceUnavailableError
from mlpipe.fetch import check_source_url
from mlpipe.gate import drift_rule
from mlpipe.naming import choose_model, model_location
from mlpipe.redaction import redact_url
from mlpipe.storage import Store
from pipeline_local.cli.common import EXIT_FAILED, EXIT_USAGE, failed
from pipeline_local.cli.runs import dataset_from_args

CHUNK = 1024 * 1024


def contract(args: argparse.Namespace) -> int:
    """``pipeline contract show`` and ``pipeline contract diff``."""
    store = Store.on_this_machine()
    name = f"contract {args.action}"
    if args.action == "diff" and not args.source_url:
        print(f"pipeline {name}: give the file to check with --source-url", file=sys.stderr)
        return EXIT_USAGE
    try:
        location = model_location(args.publish_uri, choose_model(args.publish_uri, args.model, store=store))
        found, why = contract_for(location, read_champion(location, store=store), store=store)
        where = store.target(contract_uri(location)).uri
        if found is None:
            print(f"pipeline {name}: no contract at {location}: {why}", file=sys.stderr)
            return EXIT_FAILED
        if args.action == "show":
            print(json.dumps(found, indent=2) if args.json else format_contract(found, where))
            return 0
        description = DatasetDescription.from_value(dataset_from_args(args))
        watch = DataWatch(redact_url(args.source_url), description.na_values, found, where, policy="accept")
        validate_dataset(_chunks(args.source_url, store), redact_url(args.source_url), description, watch=watch)
    except PipelineError as exc:
        return failed(name, exc)
    result = watch.result()
    refusal = drift_rule({"drift": result["drift"]}, args.max_drift)
    if args.json:
        print(json.dumps({"schema_change": result["schema_change"], "drift": result["drift"]}, indent=2))
    else:
        changes = (result["schema_change"] or {}).get("changes") or []
        print(f"schema: {len(changes)} difference(s) from {where}" if changes else f"schema: matches {where}")
        for change in changes:
            print(f"  {change['change']}: {change['detail']}")
        print(format_drift(result["drift"]))
        if refusal is not None:
            print(f"max_drift: rejected: {refusal.split('. ', 1)[0]}")
    return EXIT_FAILED if result["schema_change"] or refusal else 0


def _chunks(source: str, store: Store) -> Iterator[bytes]:
    """The file's bytes: over HTTP(S) (the source's checks, loopback allowed here), or a path or S3 URI."""
    if not source.startswith(("http://", "https://")):
        with store.target(source).open_read() as handle:
            yield from iter(lambda: handle.read(CHUNK), b"")
        return
    check_source_url(source, allow_loopback=True)
    try:
        with requests.get(source, stream=True, timeout=(5, 30), allow_redirects=False) as response:
            response.raise_for_status()
            yield from response.iter_content(CHUNK)
    except requests.RequestException as exc:
        raise SourceUnavailableError(f"cannot read {redact_url(source)}: {type(exc).__name__}") from None
