"""Fetch the source over HTTP(S), streamed, validated on the fly, written atomically to the dataset target.

The body goes from the HTTP response through the validator to the target's ``stream_write`` chunk
by chunk: neither memory nor /tmp grows with the source's size (up to 5 GiB). The validator's
end-of-file checks run before the block ends, so an invalid, oversize or broken-off body leaves
nothing at the target (on S3 its multipart upload is aborted).

While it streams, the download reports its progress to the ``mlpipe.fetch`` logger at INFO: at
most every ``PROGRESS_SECONDS``, one line with the bytes received, the rate (MB/s, 10**6 bytes)
and, when the source sent a Content-Length, the percent; and a last line with the total bytes,
seconds and rate. Each record carries the numbers in its ``progress`` field (the JSON log line in
AWS); ``pipeline run`` shows them on the console (``mlpipe.observability.progress_on_console``).
"""

from __future__ import annotations

import ipaddress
import logging
import random
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from mlpipe.dataset import DatasetStats, DatasetValidator
from mlpipe.description import DatasetDescription
from mlpipe.exceptions import (
    InvalidRequestError,
    SourceRejectedError,
    SourceTooLargeError,
    SourceUnavailableError,
)
from mlpipe.storage import Target

if TYPE_CHECKING:
    import requests

LOG = logging.getLogger(__name__)
CHUNK_BYTES = 64 * 1024
PROGRESS_SECONDS = 5.0  # at most one progress line per this many seconds while a body streams
MB = 1_000_000
MAX_REDIRECTS = 5
_METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"}
_METADATA_ADDRESSES = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}


@dataclass(frozen=True)
class FetchPolicy:
    """How hard to try: timeouts per request, attempts inside the function, size limit, allowed hosts."""

    max_bytes: int
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    attempts: int = 3
    backoff_seconds: float = 0.5
    allow_loopback: bool = False
    min_class_rows: int = 1  # the run's cv_folds, so a dataset training would refuse is never stored


def check_source_url(url: str, *, allow_loopback: bool = False, resolve: bool = False) -> None:
    """Reject a source URL that is not http(s), or whose host is a cloud metadata or link-local address.

    Loopback is refused too unless ``allow_loopback`` (in Lambda, 127.0.0.1:9001 is the runtime API).
    With ``resolve``, a host name is looked up and every address it resolves to is checked.
    """
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when out of range
    except ValueError as exc:
        raise InvalidRequestError(f"source URL {url!r} is not a valid URL: {exc}") from exc
    if parts.scheme not in {"http", "https"}:
        raise InvalidRequestError(
            f"source URL {url!r}: scheme {parts.scheme or '(none)'!r} is not allowed; use an http:// or https:// URL"
        )
    host = parts.hostname
    if not host:
        raise InvalidRequestError(f"source URL {url!r} has no host")
    if host.lower() in _METADATA_HOSTS:
        raise InvalidRequestError(f"source URL {url!r} points at a cloud metadata service")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = _resolve(url, host, port) if resolve else []
    for address in addresses:
        _check_address(url, address, allow_loopback=allow_loopback)


def _resolve(url: str, host: str, port: int | None) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except UnicodeError as exc:  # a label longer than 63 characters, or not IDNA-encodable
        raise InvalidRequestError(f"source URL {url!r}: {host!r} is not a valid host name") from exc
    except OSError as exc:
        raise SourceUnavailableError(f"source URL {url!r}: cannot resolve {host!r}: {exc}") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _check_address(url: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_loopback: bool) -> None:
    if address in _METADATA_ADDRESSES or address.is_link_local:  # 169.254.169.254 is link-local
        raise InvalidRequestError(f"source URL {url!r} points at a link-local or cloud metadata address ({address})")
    if address.is_unspecified or address.is_multicast:
        raise InvalidRequestError(f"source URL {url!r} points at an address that cannot serve data ({address})")
    if address.is_loopback and not allow_loopback:
        raise InvalidRequestError(
            f"source URL {url!r} points at this machine ({address}); loopback sources are only allowed in local runs"
        )


def fetch_dataset(
    url: str,
    target: Target,
    policy: FetchPolicy,
    *,
    description: DatasetDescription | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DatasetStats:
    """Download ``url`` into ``target``; retry transient failures; return the valid dataset's stats.

    Nothing appears at ``target`` unless the whole body arrived and passed validation against
    ``description`` (default: the default description).
    Raises SourceUnavailableError (retryable) after ``policy.attempts``, SourceRejectedError,
    SourceTooLargeError, InvalidDatasetError, or TargetExistsError when another execution wrote
    the dataset first. ``clock`` (seconds, monotonic) times the progress lines; ``sleep`` the backoff.
    """
    import requests

    with requests.Session() as session:
        session.trust_env = False  # no proxies or .netrc from the environment: the URL is the whole request
        for attempt in range(1, policy.attempts + 1):
            try:
                return _fetch_once(session, url, target, policy, description or DatasetDescription(), clock)
            except SourceUnavailableError as exc:
                if attempt == policy.attempts:
                    raise
                delay = random.uniform(0, policy.backoff_seconds * 2 ** (attempt - 1))  # full jitter
                LOG.warning("attempt %d of %d failed, retrying in %.2fs: %s", attempt, policy.attempts, delay, exc)
                sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _fetch_once(
    session: requests.Session,
    url: str,
    target: Target,
    policy: FetchPolicy,
    description: DatasetDescription,
    clock: Callable[[], float],
) -> DatasetStats:
    import requests

    response = _follow_redirects(session, url, policy)
    with response:
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > policy.max_bytes:
            raise SourceTooLargeError(
                f"source {url!r} announces {int(length)} bytes, more than the maximum of "
                f"{policy.max_bytes}; raise max_source_bytes if this is expected"
            )
        validator = DatasetValidator(url, description, policy.min_class_rows)  # errors name where the data is
        # A compressed body's Content-Length is not the size of what it decodes to: no percent then.
        encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
        progress = DownloadProgress(int(length) if length.isdigit() and not encoded else None, clock)
        with target.stream_write() as sink:

            def body() -> Iterator[bytes]:
                try:
                    for chunk in response.iter_content(CHUNK_BYTES):
                        progress.received += len(chunk)
                        if progress.received > policy.max_bytes:
                            raise SourceTooLargeError(
                                f"source {url!r} sent more than the maximum of {policy.max_bytes} "
                                "bytes; the transfer was stopped. Raise max_source_bytes if this "
                                "is expected"
                            )
                        sink.write(chunk)
                        progress.tick()
                        yield chunk
                except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                    raise SourceUnavailableError(
                        f"source {url!r} broke off after {progress.received} bytes: {exc}"
                    ) from exc
                except requests.RequestException as exc:  # e.g. a body that is not the gzip it claims to be
                    raise SourceRejectedError(f"source {url!r} sent a body that cannot be decoded: {exc}") from exc

            # Inside the block: the end-of-file checks (class counts...) decide before the target commits.
            stats = validator.validate(body())
        progress.finished()
        return stats


class DownloadProgress:
    """Bytes received, and a progress line at most every PROGRESS_SECONDS by ``clock`` (see the module)."""

    def __init__(self, total: int | None, clock: Callable[[], float]) -> None:
        self.total = total
        self.received = 0
        self._clock = clock
        self._started = self._last = clock()

    def tick(self) -> None:
        """Log a progress line if PROGRESS_SECONDS passed since the last one."""
        now = self._clock()
        if now - self._last >= PROGRESS_SECONDS:
            self._last = now
            self._log(now, done=False)

    def finished(self) -> None:
        """Log the last line: the total bytes, seconds and rate."""
        self._log(self._clock(), done=True)

    def _log(self, now: float, *, done: bool) -> None:
        seconds = max(now - self._started, 0.0)
        rate = self.received / MB / seconds if seconds > 0 else None
        percent = round(100 * self.received / self.total, 1) if self.total else None
        numbers = {"task": "download", "bytes": self.received, "total_bytes": self.total, "percent": percent}
        numbers |= {"seconds": round(seconds, 3), "mb_per_second": round(rate, 2) if rate is not None else None}
        at = f" at {rate:.1f} MB/s" if rate is not None else ""
        if done:
            message = f"download: {self.received / MB:.1f} MB in {seconds:.1f} s{at}"
        elif self.total:
            message = f"download: {self.received / MB:.1f} MB of {self.total / MB:.1f} MB ({percent:.0f}%){at}"
        else:
            message = f"download: {self.received / MB:.1f} MB{at}"
        LOG.info(message, extra={"progress": numbers})


def _follow_redirects(session: requests.Session, url: str, policy: FetchPolicy) -> Any:
    """GET ``url``, following redirects by hand so that every hop's URL and host are checked."""
    import requests

    seen = [url]
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        check_source_url(current, allow_loopback=policy.allow_loopback, resolve=True)
        try:
            response = session.get(
                current, stream=True, allow_redirects=False, timeout=(policy.connect_timeout, policy.read_timeout)
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise SourceUnavailableError(f"source {current!r} did not answer: {exc}") from exc
        except requests.RequestException as exc:
            raise SourceRejectedError(f"source {current!r}: {exc}") from exc
        if not response.is_redirect:
            _check_status(current, response)
            return response
        response.close()
        location = urljoin(current, response.headers.get("Location", ""))
        if urlsplit(location).scheme not in {"http", "https"}:
            raise SourceRejectedError(f"source {current!r} redirects to {location!r}, which is not an HTTP URL")
        if location in seen:
            raise SourceRejectedError(f"source {url!r} redirects in a loop: {' -> '.join([*seen, location])}")
        seen.append(location)
        current = location
    raise SourceRejectedError(f"source {url!r} redirects more than {MAX_REDIRECTS} times: {' -> '.join(seen)}")


def _check_status(url: str, response: Any) -> None:
    status = response.status_code
    if status == 200:
        return
    response.close()
    reason = f"source {url!r} answered HTTP {status} {response.reason or ''}".rstrip()
    if status >= 500 or status in {408, 425, 429}:
        raise SourceUnavailableError(f"{reason}; the server may recover, the run is retried")
    if status == 404:
        raise SourceRejectedError(f"{reason}: nothing there; check the source URL")
    if status in {401, 403}:
        raise SourceRejectedError(f"{reason}: access refused; the source must be publicly readable")
    raise SourceRejectedError(f"{reason}; expected 200 with the CSV")
