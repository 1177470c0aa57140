"""The download's stream to a target, and training's read of a dataset, at two sizes: seconds, MB/s, peak RSS.

An Iris-shaped CSV (``bench.fit_time.iris_like``: 4 features, 3 classes; a block of 20,000 rows
repeated up to the size) of 30 MB and of 300 MB is written under a temporary directory and served
over HTTP on 127.0.0.1. Each case runs in a fresh Python process, so its peak RSS
(``resource.getrusage``'s ``ru_maxrss``) is its own and not the largest case's so far:

- ``download``: ``mlpipe.fetch.fetch_dataset`` (streamed, validated, ``stream_write``) into a local
  directory and into S3. S3 is moto's server in a process of its own (``python -m moto.server``):
  moto completes a multipart upload by joining its parts in memory, which in the same process
  (``mock_aws``) would be counted as the download's memory. The download's RSS stays flat in the
  size: its bound is the transfer's parts (``mlpipe.storage.s3.stream_transfer``) and the pipe.
- ``read``: training's read of the dataset from S3 (``validate_dataset`` then ``read_dataset``
  with pandas, as ``train_model`` does), streamed (``S3Target.open_read``: a GET per pass, no
  /tmp) against the old way (the object spooled to /tmp with ``download_fileobj``, then read
  twice). /tmp is the bytes the case left in the temporary directory at its largest.

Numbers, not checks: nothing here fails on a slow figure. Not part of ``make test``.

    .venv/bin/python -m bench.stream [--sizes 30,300] [--only download|read]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.fit_time import iris_like
from mlpipe.config import MAX_SOURCE_BYTES_LIMIT
from mlpipe.dataset import validate_dataset
from mlpipe.description import DatasetDescription
from mlpipe.fetch import FetchPolicy, fetch_dataset
from mlpipe.storage import CHUNK_SIZE, S3Target, Store
from mlpipe.training import read_dataset

MB = 1_000_000
BUCKET = "bench-stream"
BLOCK_ROWS = 20_000


def write_csv(path: Path, size: int) -> None:
    """An Iris-shaped CSV of at least ``size`` bytes: one block of rows, repeated."""
    features, labels = iris_like(BLOCK_ROWS, seed=0)
    names = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
    block = "".join(
        f"{a:.1f},{b:.1f},{c:.1f},{d:.1f},{names[int(y)]}\n" for (a, b, c, d), y in zip(features, labels, strict=True)
    ).encode()
    with path.open("wb") as handle:
        for _ in range(-(-size // len(block))):
            handle.write(block)


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 in a process of its own; yields its endpoint URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("moto's server did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def tmp_bytes(directory: Path) -> int:
    """The bytes of the files under ``directory``."""
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def case_download(url: str, store: str, work: Path) -> dict[str, Any]:
    """One download of ``url`` into a fresh target of ``store`` (``local`` or ``s3``)."""
    uri = f"s3://{BUCKET}/{os.getpid()}/dataset.csv" if store == "s3" else str(work / "store" / "dataset.csv")
    policy = FetchPolicy(max_bytes=MAX_SOURCE_BYTES_LIMIT, allow_loopback=True)
    start = time.perf_counter()
    stats = fetch_dataset(url, Store.on_this_machine().target(uri), policy)
    seconds = time.perf_counter() - start
    return {"bytes": stats.bytes, "rows": stats.rows, "seconds": seconds}


def case_read(key: str, how: str, work: Path) -> dict[str, Any]:
    """Training's two passes over ``s3://BUCKET/key``: ``stream`` (open_read) or ``spool`` (to /tmp first)."""
    target = S3Target(BUCKET, key)
    description = DatasetDescription()
    largest_tmp = 0

    @contextlib.contextmanager
    def opened() -> Iterator[Any]:
        nonlocal largest_tmp
        if how == "stream":
            with target.open_read() as handle:
                yield handle
            return
        with tempfile.TemporaryFile(dir=work) as spool:
            target.client.download_fileobj(BUCKET, key, spool)
            largest_tmp = max(largest_tmp, tmp_bytes(work), spool.tell())
            spool.seek(0)
            yield spool

    start = time.perf_counter()
    with opened() as handle:
        stats = validate_dataset(iter(lambda: handle.read(CHUNK_SIZE), b""), target.uri, description, 5)
        handle.seek(0)
        features, _ = read_dataset(handle, target.uri, stats, description)
    seconds = time.perf_counter() - start
    return {"bytes": stats.bytes, "rows": len(features), "seconds": seconds, "tmp_bytes": largest_tmp}


def run_case(args: argparse.Namespace) -> None:
    """The child process: one case, its numbers as one JSON line on stdout."""
    work = Path(args.work)
    if args.case == "download":
        result = case_download(args.url, args.store, work)
    else:
        result = case_read(args.key, args.store, work)
    print(json.dumps(result | {"peak_rss_mb": peak_rss_mb()}))


def child(*argv: str, env: dict[str, str]) -> dict[str, Any]:
    """Run one case in a fresh process; its numbers."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.stream", "--case", *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench.stream --case {' '.join(argv)} failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return result


def main() -> None:
    """Every case at every size, then one table on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="30,300", help="CSV sizes in MB (default %(default)s)")
    parser.add_argument("--only", choices=["download", "read"])
    parser.add_argument("--case", choices=["download", "read"], help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        run_case(args)
        return

    import boto3

    from pipeline_local.runner import serve_directory

    sizes = [int(text) for text in args.sizes.split(",")]
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as root, moto_server() as endpoint:
        www = Path(root, "www")
        www.mkdir()
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        s3.create_bucket(Bucket=BUCKET)
        with serve_directory(www) as server:
            for size in sizes:
                path = www / f"iris-{size}mb.csv"
                write_csv(path, size * MB)
                url = f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
                work = Path(root, f"work-{size}")
                work.mkdir()
                common = ("--url", url, "--work", str(work))
                if args.only != "read":
                    for store in ("local", "s3"):
                        found = child("download", "--store", store, *common, env=env)
                        rows.append(("download", store, *numbers(found)))
                if args.only != "download":
                    key = f"read/{path.name}"
                    s3.upload_file(str(path), BUCKET, key)
                    for how in ("spool", "stream"):
                        found = child("read", "--store", how, "--key", key, *common, env=env | {"TMPDIR": str(work)})
                        rows.append((f"train read ({how})", "s3", *numbers(found)))
    print_table(rows)


def numbers(found: dict[str, Any]) -> tuple[str, ...]:
    """A case's numbers as the table's cells."""
    seconds = found["seconds"]
    return (
        f"{found['bytes'] / MB:.0f}",
        f"{found['rows']:,}",
        f"{seconds:.1f}",
        f"{found['bytes'] / MB / seconds:.1f}",
        f"{found['peak_rss_mb']:.0f}",
        f"{found.get('tmp_bytes', 0) / MB:.0f}",
    )


def print_table(rows: list[tuple[str, ...]]) -> None:
    """The rows under a header, right-aligned."""
    header = ("case", "store", "MB", "rows", "seconds", "MB/s", "peak RSS MB", "/tmp MB")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).rjust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
