"""``pipeline contract show|diff``: the champion's data contract, and a file checked against it without a run.

``diff`` reads the file as the download would (through ``mlpipe.sources.source_chunks``: redirects followed
through the address guard, gzip and a zip of one file decompressed, ``{run_date}`` filled in from
``--run-date``; the dataset description's flags, the same streaming validation and sketch,
``mlpipe.contract.DataWatch``) but collects every difference instead of stopping at the first, and
measures drift; nothing is written. Exit status 1 when the file's schema differs from
the contract (the download would refuse it) or a feature drifts more than ``--max-drift``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from mlpipe.champion import read_champion
from mlpipe.config import MAX_SOURCE_BYTES_LIMIT, fill_date
from mlpipe.contract import DataWatch, contract_for, contract_uri, format_contract, format_drift
from mlpipe.dataset import validate_dataset
from mlpipe.description import DatasetDescription
from mlpipe.exceptions import PipelineError
from mlpipe.fetch import FetchPolicy
from mlpipe.gate import drift_rule
from mlpipe.naming import choose_model, model_location
from mlpipe.sources import check_source, source_chunks
from mlpipe.storage import Store
from pipeline_local.cli.common import EXIT_FAILED, EXIT_USAGE, failed
from pipeline_local.cli.runs import dataset_from_args

# A local run's reading: loopback sources allowed, no size limit below the pipeline's own (nothing is stored).
POLICY = FetchPolicy(max_bytes=MAX_SOURCE_BYTES_LIMIT, attempts=1, allow_loopback=True)


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
        source = fill_date(args.source_url, args.run_date or dt.datetime.now(dt.UTC).date().isoformat())
        check_source(source, local_run=True, allow_loopback=True)
        with source_chunks(source, store=store, policy=POLICY) as (shown, chunks):
            watch = DataWatch(shown, description.na_values, found, where, policy="accept")
            validate_dataset(chunks, shown, description, watch=watch)
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
