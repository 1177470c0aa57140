"""What a gzip source costs the download: decompression alone, and the download's whole check with and without it.

An Iris-shaped CSV (``bench.fit_time.iris_like``; a block of 20,000 rows repeated up to the size)
is compressed with gzip (level 6, as ``gzip`` does by default) in memory, then, in 1 MiB chunks as
a source arrives:

- ``gunzip``: ``mlpipe.compression.decoded`` alone (zlib, at most 256 KiB out per step);
- ``validate plain`` / ``validate gzip``: ``mlpipe.dataset.validate_dataset`` over the plain bytes,
  and over ``decoded`` of the compressed ones: what the download does to every chunk, minus the
  network and the write.

MB/s are decompressed (CSV) megabytes (10**6 bytes) per second of one CPU; the best of ``--repeat``.
Numbers, not checks: nothing here fails on a slow figure. Not part of ``make test``.

    .venv/bin/python -m bench.decompress [--mb 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gzip
import io
import time
from collections.abc import Callable, Iterator

from bench.fit_time import iris_like
from mlpipe.compression import decoded
from mlpipe.dataset import validate_dataset
from mlpipe.description import DatasetDescription

MB = 1_000_000
CHUNK = 1024 * 1024
BLOCK_ROWS = 20_000


def csv_bytes(size_mb: int) -> bytes:
    """An Iris-shaped CSV (no header, as the default description reads it) of about ``size_mb`` MB."""
    features, labels = iris_like(BLOCK_ROWS, seed=0)
    out = io.StringIO()
    for row, label in zip(features, labels, strict=True):
        out.write(",".join(f"{value:.2f}" for value in row) + f",class-{label}\n")
    block = out.getvalue().encode()
    return block * max(1, size_mb * MB // len(block))


def chunks(data: bytes) -> Iterator[bytes]:
    """``data`` in CHUNK-sized pieces, as a source arrives."""
    view = memoryview(data)
    for start in range(0, len(view), CHUNK):
        yield bytes(view[start : start + CHUNK])


def best(repeat: int, work: Callable[[], object]) -> float:
    """The fastest of ``repeat`` runs of ``work``, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    """Print seconds and MB/s of each case."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=50, help="size of the CSV in MB (default 50)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case; the best counts (default 3)")
    args = parser.parse_args(argv)
    plain = csv_bytes(args.mb)
    packed = gzip.compress(plain, compresslevel=6)
    print(f"CSV {len(plain) / MB:.1f} MB, gzip {len(packed) / MB:.1f} MB (ratio {len(plain) / len(packed):.1f})")
    description = DatasetDescription()

    def gunzip() -> int:
        return sum(len(piece) for piece in decoded(chunks(packed), "bench"))

    assert gunzip() == len(plain)
    cases = {
        "gunzip": gunzip,
        "validate plain": lambda: validate_dataset(chunks(plain), "bench", description),
        "validate gzip": lambda: validate_dataset(decoded(chunks(packed), "bench"), "bench", description),
    }
    for name, work in cases.items():
        seconds = best(args.repeat, work)
        print(f"{name:<15} {seconds:7.3f} s  {len(plain) / MB / seconds:8.1f} MB/s of CSV")


if __name__ == "__main__":
    main()
