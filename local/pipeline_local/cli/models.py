"""The commands on what runs made: ``status``, ``champion`` (and ``promote``, ``rollback``), ``predict``, ``report``.

Each reads (or, for the champion, writes) the roots on this machine or in S3 through ``Store.on_this_machine()``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO, cast

from mlpipe import champion as champions
from mlpipe.exceptions import InvalidRequestError, PipelineError
from mlpipe.gate import manifest_score, score_words
from mlpipe.naming import choose_model, model_location
from mlpipe.predicting import NO_PROBABILITIES, predict_file
from mlpipe.reporting_html import write_report
from mlpipe.status import collect_status, format_status
from mlpipe.storage import Store
from pipeline_local.cli.common import EXIT_FAILED, failed


def status(args: argparse.Namespace) -> int:
    """``pipeline status``: every dataset, model and published model under the roots, by run date."""
    store = Store.on_this_machine()

    first, last = (args.run_date, args.run_date) if args.run_date else (args.first, args.last)
    try:
        location = model_location(args.publish_uri, choose_model(args.publish_uri, args.model, store=store))
        found = collect_status(args.artifact_root, location, first=first, last=last, store=store)
    except PipelineError as exc:
        return failed(args.command, exc)
    print(json.dumps(found, indent=2) if args.json else format_status(found))
    return 0


def champion(args: argparse.Namespace) -> int:
    """``pipeline champion``, ``promote`` and ``rollback``: the champion and its history, after the change asked."""
    store = Store.on_this_machine()

    who = f"pipeline {args.command} ({os.environ.get('USER', 'someone')})"
    try:
        name = choose_model(args.publish_uri, args.model, store=store)
        location = model_location(args.publish_uri, name)
        if args.command == "promote":
            runs = collect_status(location, location, first=args.run_date, last=args.run_date, store=store)["runs"]
            published = [p for run in runs for p in run["published"] if p["state"] == "present"]
            chosen = [p for p in published if args.identity in (None, p["identity"])]
            if len(chosen) != 1:
                listed = ", ".join(p["identity"] for p in published) or "none"
                print(
                    f"pipeline promote: {len(chosen)} published models match on {args.run_date} (there are: {listed}); "
                    "name one with --identity",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            result = champions.set_champion(location, chosen[0]["uri"], promoted_by=who, model=name, store=store)
            print(result.reason, file=sys.stderr)
        elif args.command == "rollback":
            print(champions.rollback(location, promoted_by=who, store=store).reason, file=sys.stderr)
        current = champions.read_champion(location, store=store)
        history = champions.champion_history(location, store=store)
    except PipelineError as exc:
        return failed(args.command, exc)
    if args.json:
        print(json.dumps({"champion": current, "history": history}, indent=2))
        return 0
    if current is None:
        print(f"no champion yet of model {name} under {location}")
        return 0
    score_name, score = manifest_score(current)
    shown = f"{score:.4f}" if score is not None else "-"
    print(
        f"champion of model {name}: {current['identity']} ({current['run_date']}, {score_words(score_name)} {shown}) "
        f"{current['model_uri']}"
    )
    print("history, newest first:")
    for entry in reversed(history):
        when, action, identity = entry["promoted_at"], entry["action"], entry["identity"]
        print(f"  {when}  {action:<8} {identity}  ({entry['run_date']})  by {entry['promoted_by']}")
    return 0


def predict(args: argparse.Namespace) -> int:
    """``pipeline predict``: the champion's (or ``--model-uri``'s) prediction for every row of a CSV."""
    store = Store.on_this_machine()

    try:
        if args.output is not None:
            check_output(args.output)  # before the work, not after it
        location = None
        if not args.model_uri:
            location = model_location(args.publish_uri, choose_model(args.publish_uri, args.model, store=store))
        result = predict_file(args.input, model_uri=args.model_uri, publish_uri=location, store=store)
    except (PipelineError, OSError) as exc:
        return failed(args.command, exc)
    if result.task == "regression":
        print(f"{NO_PROBABILITIES}; predicting with {result.model_uri}", file=sys.stderr)
    if result.metrics is not None:
        r2 = result.metrics["r2"]
        print(
            f"on the label column {result.label_column!r} ({result.labelled_rows} rows): RMSE "
            f"{result.metrics['rmse']:.4g}, MAE {result.metrics['mae']:.4g}, R² "
            + ("- (the label does not vary)" if r2 is None else f"{r2:.4f}"),
            file=sys.stderr,
        )
    if result.accuracy is not None:
        print(
            f"accuracy on the label column {result.label_column!r}: {result.accuracy:.4f} "
            f"({result.labelled_rows} rows) with {result.model_uri}",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    elif args.output is not None:
        try:
            write_whole(args.output, result.write_csv)
        except OSError as exc:
            return failed(args.command, exc)
        print(f"wrote {len(result.predictions)} predictions to {args.output}", file=sys.stderr)
    else:
        result.write_csv(sys.stdout)
    return 0


def check_output(path: Path) -> None:
    """InvalidRequestError unless ``path`` can be a file written here: its folder exists, and it is not a folder."""
    if path.is_dir():
        raise InvalidRequestError(f"--output {path} is a folder: name the CSV file to write in it")
    if not path.parent.is_dir():
        raise InvalidRequestError(f"--output {path}: the folder {path.parent} does not exist; create it first")


def write_whole(path: Path, write: Callable[[TextIO], None]) -> None:
    """Write ``path`` whole or not at all: into a hidden file beside it, renamed over it at the end."""
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed, then renamed or removed, below)
        "w", newline="", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", suffix=".partial", delete=False
    )
    try:
        with handle:
            write(cast(TextIO, handle))
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def report(args: argparse.Namespace) -> int:
    """``pipeline report``: one self-contained HTML page with the pipeline's history."""
    store = Store.on_this_machine()

    try:
        location = model_location(args.publish_uri, choose_model(args.publish_uri, args.model, store=store))
        summary = write_report(args.html, artifact_root=args.artifact_root, publish_uri=location, store=store)
    except (PipelineError, OSError) as exc:
        return failed(args.command, exc)
    print(
        f"wrote {args.html}: {summary['models']} models over {summary['run_dates']} run dates, "
        f"{summary['champion_changes']} champion changes"
    )
    return 0
