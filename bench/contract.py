"""What the data contract's sketch and check add to the download's streaming validation: seconds and peak memory.

A mixed CSV (8 numeric features, 2 categorical ones with a few values, one with many, a label; ``--rows``
rows) is validated in memory three ways, each in a fresh process so its peak RSS is its own:

- ``plain``: ``validate_dataset`` alone (what the download did before the contract);
- ``sketch``: with ``mlpipe.contract.DataWatch`` and no contract (the first run: the profile only);
- ``check``: with a contract made from the same data (every later run: the profile, the checks, drift).

Numbers, not checks: nothing here fails on a slow figure. Not part of ``make test``.

    .venv/bin/python -m bench.contract [--rows 200000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time

from mlpipe.contract import DataWatch, contract_document
from mlpipe.dataset import validate_dataset
from mlpipe.description import DatasetDescription


def body(rows: int) -> bytes:
    """The CSV's bytes: seeded, so each process makes the same file."""
    rand = random.Random(0)
    header = [f"x{i}" for i in range(8)] + ["colour", "shape", "code", "label"]
    lines = [",".join(header)]
    for _ in range(rows):
        numbers = [f"{rand.gauss(10, 3):.3f}" for _ in range(8)]
        cells = [rand.choice("rgb"), rand.choice(["sq", "ci"]), f"c{rand.randrange(5000)}", rand.choice("AB")]
        lines.append(",".join(numbers + cells))
    return ("\n".join(lines) + "\n").encode()


def case(mode: str, rows: int) -> dict[str, float]:
    """Validate the file one way; seconds and peak RSS (MB)."""
    data = body(rows)
    chunks = [data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20)]
    description = DatasetDescription(header="true")
    contract = None
    if mode == "check":
        first = DataWatch("bench", description.na_values)
        validate_dataset(chunks, "bench", description, watch=first)
        card = {"data_profile": first.profile(), "classes": ["A", "B"]}
        contract = contract_document({"identity": "published-bench"}, card)
    watch = None if mode == "plain" else DataWatch("bench", description.na_values, contract)
    start = time.process_time()  # CPU seconds: the machine may be shared
    validate_dataset(chunks, "bench", description, watch=watch)
    if watch is not None:
        watch.result()
    seconds = time.process_time() - start
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> int:
    """Run each case in its own process and print a table (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--case", choices=["plain", "sketch", "check"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(case(args.case, args.rows)))
        return 0
    results = {}
    for mode in ("plain", "sketch", "check"):
        out = subprocess.run(
            [sys.executable, "-m", "bench.contract", "--rows", str(args.rows), "--case", mode],
            capture_output=True,
            text=True,
            check=True,
        )
        results[mode] = json.loads(out.stdout)
        found = results[mode]
        print(f"{mode:7} {args.rows} rows: {found['seconds']:6.2f} s of CPU, peak RSS {found['peak_rss_mb']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
