"""Fetch the source over HTTP(S), streamed, validated on the fly, written atomically to the dataset target."""

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
from mlpipe.targets import Target

if TYPE_CHECKING:
    import requests

LOG = logging.getLogger(__name__)
CHUNK_BYTES = 64 * 1024
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
) -> DatasetStats:
    """Download ``url`` into ``target``; retry transient failures; return the valid dataset's stats.

    Nothing appears at ``target`` unless the whole body arrived and passed validation against
    ``description`` (default: the default description).
    Raises SourceUnavailableError (retryable) after ``policy.attempts``, SourceRejectedError,
    SourceTooLargeError, InvalidDatasetError, or TargetExistsError when another execution wrote
    the dataset first.
    """
    import requests

    with requests.Session() as session:
        session.trust_env = False  # no proxies or .netrc from the environment: the URL is the whole request
        for attempt in range(1, policy.attempts + 1):
            try:
                return _fetch_once(session, url, target, policy, description or DatasetDescription())
            except SourceUnavailableError as exc:
                if attempt == policy.attempts:
                    raise
                delay = random.uniform(0, policy.backoff_seconds * 2 ** (attempt - 1))  # full jitter
                LOG.warning("attempt %d of %d failed, retrying in %.2fs: %s", attempt, policy.attempts, delay, exc)
                sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _fetch_once(
    session: requests.Session, url: str, target: Target, policy: FetchPolicy, description: DatasetDescription
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
        received = 0
        with target.atomic_write() as handle:

            def body() -> Iterator[bytes]:
                nonlocal received
                try:
                    for chunk in response.iter_content(CHUNK_BYTES):
                        received += len(chunk)
                        if received > policy.max_bytes:
                            raise SourceTooLargeError(
                                f"source {url!r} sent more than the maximum of {policy.max_bytes} "
                                "bytes; the transfer was stopped. Raise max_source_bytes if this "
                                "is expected"
                            )
                        handle.write(chunk)
                        yield chunk
                except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                    raise SourceUnavailableError(f"source {url!r} broke off after {received} bytes: {exc}") from exc
                except requests.RequestException as exc:  # e.g. a body that is not the gzip it claims to be
                    raise SourceRejectedError(f"source {url!r} sent a body that cannot be decoded: {exc}") from exc

            return validator.validate(body())


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
