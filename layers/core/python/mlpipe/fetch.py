"""Fetch the source over HTTP(S), streamed, validated on the fly, written atomically to the dataset target.

The body goes from the HTTP response through the validator to the target's ``stream_write`` chunk
by chunk: neither memory nor /tmp grows with the source's size (up to 5 GiB). The validator's
end-of-file checks run before the block ends, so an invalid, oversize or broken-off body leaves
nothing at the target (on S3 its multipart upload is aborted).

Where it connects: ``check_source_url`` refuses any URL, first or redirect hop, that names a
special address (see there), and every connection resolves its host once, checks each address and
connects to those only (``_Guard``), so DNS cannot answer the check and the connection differently.
How long: ``FetchPolicy.time_budget`` bounds the whole download, retries included; at the deadline
the source's sockets are shut and the download raises DownloadTimeoutError. Errors and log lines
name the URL without its secrets (``mlpipe.redaction``); the request itself uses the whole URL.

While it streams, the download reports its progress to the ``mlpipe.fetch`` logger at INFO: at
most every ``PROGRESS_SECONDS``, one line with the bytes received, the rate (MB/s, 10**6 bytes)
and, when the source sent a Content-Length, the percent; and a last line with the total bytes,
seconds and rate. Each record carries the numbers in its ``progress`` field (the JSON log line in
AWS); ``pipeline run`` shows them on the console (``mlpipe.observability.progress_on_console``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urljoin, urlsplit

from mlpipe.compression import decoded
from mlpipe.dataset import DatasetStats, DatasetValidator, RowWatch
from mlpipe.description import DatasetDescription
from mlpipe.exceptions import (
    DownloadTimeoutError,
    InvalidRequestError,
    PipelineError,
    SourceChangedError,
    SourceNotReadyError,
    SourceRejectedError,
    SourceTooLargeError,
    SourceUnavailableError,
)
from mlpipe.problem import AUTO, DEFAULT_TARGET_TRANSFORM
from mlpipe.redaction import has_secrets, redact_text, redact_url
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
# Special ranges some Python versions do not mark as private: NAT64's local-use prefix, the 6to4 relay anycast.
_NOT_PUBLIC = (ipaddress.ip_network("64:ff9b:1::/48"), ipaddress.ip_network("192.88.99.0/24"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class FetchPolicy:
    """How hard to try: timeouts per request, attempts inside the function, size limit, allowed hosts, and
    ``time_budget``, the seconds the whole download may take (retries included; None: no overall limit)."""

    max_bytes: int
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    attempts: int = 3
    backoff_seconds: float = 0.5
    allow_loopback: bool = False
    min_class_rows: int = 1  # the run's cv_folds, so a dataset training would refuse is never stored
    time_budget: float | None = None
    # The run's task and target transform (mlpipe.problem): the label is checked as training will read it.
    task: str = AUTO
    target_transform: str = DEFAULT_TARGET_TRANSFORM


def check_source_url(url: str, *, allow_loopback: bool = False, resolve: bool = False) -> None:
    """Reject a source URL that is not http(s), or whose host is not a public address.

    Refused: cloud metadata names and addresses, link-local, loopback (unless ``allow_loopback``: in
    Lambda, 127.0.0.1:9001 is the runtime API), private, unique-local, site-local, shared, reserved,
    documentation, multicast and unspecified addresses, in any spelling the resolver accepts
    (``2130706433``, ``0177.0.0.1``, ``127.1``) and inside an IPv6 address (IPv4-mapped, IPv4-compatible,
    6to4, Teredo, NAT64). With ``resolve``, a host name is looked up and every address it resolves to
    is checked. Messages name the URL without its secrets (``mlpipe.redaction``).
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when out of range
    except ValueError as exc:
        raise InvalidRequestError(f"source URL {shown!r} is not a valid URL: {exc}") from None
    if parts.scheme not in {"http", "https"}:
        raise InvalidRequestError(
            f"source URL {shown!r}: scheme {parts.scheme or '(none)'!r} is not allowed; use an http:// or https:// URL"
        )
    host = parts.hostname
    if not host:
        raise InvalidRequestError(f"source URL {shown!r} has no host")
    name = host.lower().rstrip(".")
    if name in _METADATA_HOSTS:
        raise InvalidRequestError(f"source URL {shown!r} points at a cloud metadata service")
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always this machine
        addresses: list[Address] = [ipaddress.ip_address("127.0.0.1")]
    else:
        addresses = _literal(host) or (_resolve(shown, host, port) if resolve else [])
    for address in addresses:
        _check_address(shown, address, allow_loopback=allow_loopback)


def _literal(host: str) -> list[Address]:
    """The address ``host`` spells, in any form the resolver reads without a lookup; [] for a name."""
    host = host.strip("[]").rstrip(".") or host  # "127.0.0.1." is no name either
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:  # numeric only: 2130706433, 0177.0.0.1, 127.1, 0x7f.1 (inet_aton's forms); never a DNS query
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return []
    return _addresses(infos)


def _addresses(infos: list[Any]) -> list[Address]:
    found: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in found:
            found.append(address)
    return found


def _resolve(shown: str, host: str, port: int | None) -> list[Address]:
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except UnicodeError:  # a label longer than 63 characters, or not IDNA-encodable
        raise InvalidRequestError(f"source URL {shown!r}: {host!r} is not a valid host name") from None
    except OSError as exc:
        raise SourceUnavailableError(f"source URL {shown!r}: cannot resolve {host!r}: {exc}") from exc
    return _addresses(infos)


def _check_address(shown: str, address: Address, *, allow_loopback: bool) -> None:
    reason = _special(address, allow_loopback=allow_loopback)
    if reason:
        raise InvalidRequestError(f"source URL {shown!r} points at {reason}")


def _special(address: Address, *, allow_loopback: bool, note: str = "") -> str | None:
    """Why ``address`` may not be a source (None: it may); ``note`` tells how the URL spelled it."""
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    if mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d to the kernel
        return _special(mapped, allow_loopback=allow_loopback, note=f", as {address}")
    where = f"{address}{note}"
    if address.is_loopback:
        return None if allow_loopback else f"this machine ({where}); loopback sources are only allowed in local runs"
    for inner in _embedded(address):  # 6to4, Teredo, NAT64, IPv4-compatible: refused whatever is allowed
        if inner.is_loopback:
            return f"a loopback address inside another address ({inner}, inside {address}), which no source has"
        reason = _special(inner, allow_loopback=False, note=f", inside {address}")
        if reason:
            return reason
    kind = _kind(address)
    return kind.format(where=where) if kind else None


def _kind(address: Address) -> str | None:
    """The kind of address ``address`` is when it cannot be a source, with a ``{where}`` to fill; None if it can."""
    if address in _METADATA_ADDRESSES or address.is_link_local:  # 169.254.169.254 is link-local
        return "a link-local or cloud metadata address ({where})"
    if address.is_unspecified or address.is_multicast:
        return "an address that cannot serve data ({where})"
    site_local = isinstance(address, ipaddress.IPv6Address) and address.is_site_local
    special = address.is_private or address.is_reserved or site_local or not address.is_global
    if special or any(address in network for network in _NOT_PUBLIC):
        return (
            "a private or reserved address ({where}), which is not on the internet; "
            "the download takes a public http(s) source"
        )
    return None


def _embedded(address: Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries to another network (6to4, Teredo, NAT64, IPv4-compatible)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = []
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


class _Guard:
    """One download's guard: the addresses it connects to, checked when resolved, and its deadline.

    Every connection the download opens resolves its host once, here, checks every address, and
    connects to those addresses only (so a name cannot resolve to one address for the check and another
    for the connection). At the deadline a timer shuts the connections' sockets down (the socket each
    ends up reading from, TLS or not), which ends a read however slowly the source drips; the download
    then raises DownloadTimeoutError.
    """

    def __init__(self, policy: FetchPolicy, shown: str) -> None:
        self.allow_loopback = policy.allow_loopback
        self.budget = policy.time_budget
        self.deadline = None if self.budget is None else time.monotonic() + self.budget
        self.shown = shown  # the download's source, without secrets
        self.current = shown  # the hop being requested, without secrets
        self.received = 0
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __enter__(self) -> _Guard:
        if self.deadline is not None:
            self._timer = threading.Timer(max(self.deadline - time.monotonic(), 0.0), self._expire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)

    def opened(self, sock: socket.socket) -> None:
        """Watch ``sock``, a connection's socket ready for the request (after TLS): shut at the deadline."""
        with self._lock:
            if not self.expired:
                self._sockets.append(sock)
                return
        _shut(sock)
        self.timed_out()

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def timeouts(self, policy: FetchPolicy) -> tuple[float, float]:
        """The next request's (connect, read) timeouts: the policy's, but never past the deadline."""
        left = self.remaining()
        if left is None:
            return policy.connect_timeout, policy.read_timeout
        if left <= 0:
            self.timed_out()
        return min(policy.connect_timeout, left), min(policy.read_timeout, left)

    def check_deadline(self) -> None:
        """DownloadTimeoutError if the deadline passed (whatever error the cut-off connection gave)."""
        if self.expired or (self.deadline is not None and time.monotonic() >= self.deadline):
            self.timed_out()

    def timed_out(self) -> NoReturn:
        """Raise the DownloadTimeoutError of this download."""
        assert self.budget is not None
        if self.budget <= 0:
            raise DownloadTimeoutError(
                f"no time left for the download of {self.shown!r}: the function's remaining time, less the margin "
                "to clean up, is used up; raise the download function's Timeout"
            )
        raise DownloadTimeoutError(
            f"the download of {self.shown!r} did not finish within {self.budget:.1f} s, the time the function had "
            f"left for it ({self.received} bytes arrived): the source is too slow for one invocation; nothing was "
            "written. Check the source, raise the download function's Timeout (Lambda allows 900 s), or copy the "
            "data somewhere faster (S3) and point source_url at it"
        )

    def connect(self, connection: Any, base: Any) -> socket.socket:
        """Open ``connection``'s socket (urllib3's ``_new_conn``) to the checked addresses of its host only."""
        if self.expired:
            self.timed_out()
        host = connection._dns_host
        shown = self.current
        addresses = _literal(host) or _resolve(shown, host.strip("[]"), connection.port)
        for address in addresses:
            _check_address(shown, address, allow_loopback=self.allow_loopback)
        failure: BaseException | None = None
        for address in addresses:
            connection._dns_host = str(address)
            try:
                sock: socket.socket = base._new_conn(connection)
            except Exception as exc:  # urllib3's NewConnectionError or ConnectTimeoutError: try the next address
                failure = exc
                continue
            finally:
                connection._dns_host = host  # the Host header, SNI and the certificate check keep the name
            return sock
        assert failure is not None
        raise failure


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's: wakes a read blocked on it, TLS or not


def _guarded_session(guard: _Guard) -> requests.Session:
    """A session without proxies or .netrc whose connections open through ``guard`` (see ``_Guard``)."""
    import requests.adapters

    session = requests.Session()
    session.trust_env = False  # no proxies or .netrc from the environment: the URL is the whole request
    adapter = requests.adapters.HTTPAdapter()
    manager = adapter.poolmanager
    manager.pool_classes_by_scheme = {
        scheme: _guarded_pool(pool, guard) for scheme, pool in manager.pool_classes_by_scheme.items()
    }
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _guarded_pool(pool: type, guard: _Guard) -> type:
    """``pool`` (urllib3's HTTP or HTTPS connection pool) whose connections open and are watched by ``guard``."""
    base = pool.ConnectionCls  # type: ignore[attr-defined]

    def new_conn(connection: Any) -> socket.socket:
        return guard.connect(connection, base)

    def connect(connection: Any) -> None:
        base.connect(connection)
        guard.opened(connection.sock)  # the socket the response reads from: TLS replaces the one new_conn made

    connection_class = type(f"Guarded{base.__name__}", (base,), {"_new_conn": new_conn, "connect": connect})
    return type(f"Guarded{pool.__name__}", (pool,), {"ConnectionCls": connection_class})


def _raise(error: PipelineError, cause: BaseException, *urls: str) -> NoReturn:
    """Raise ``error`` from ``cause``, or from nothing when a URL has secrets (the cause's text quotes them)."""
    if any(has_secrets(url) for url in urls):
        raise error from None
    raise error from cause


def fetch_dataset(
    url: str,
    target: Target,
    policy: FetchPolicy,
    *,
    description: DatasetDescription | None = None,
    version: Mapping[str, Any] | None = None,
    watch: RowWatch | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DatasetStats:
    """Download ``url`` into ``target``; retry transient failures; return the valid dataset's stats.

    Nothing appears at ``target`` unless the whole body arrived and passed validation against
    ``description`` (default: the default description) and, with ``watch``, its checks (the data contract).
    Raises SourceUnavailableError (retryable) after ``policy.attempts`` (or when the time budget leaves
    no room for another), SourceRejectedError, SourceTooLargeError, InvalidDatasetError,
    DownloadTimeoutError when ``policy.time_budget`` runs out, or TargetExistsError when another
    execution wrote the dataset first. ``clock`` (seconds, monotonic) times the progress lines; ``sleep``
    the backoff. Errors name the URL without its secrets.
    """
    with _Guard(policy, redact_url(url)) as guard, _guarded_session(guard) as session:
        for attempt in range(1, policy.attempts + 1):
            try:
                return _fetch_once(
                    session, url, target, policy, description or DatasetDescription(), clock, guard, version, watch
                )
            except SourceUnavailableError as exc:
                if attempt == policy.attempts:
                    raise
                delay = random.uniform(0, policy.backoff_seconds * 2 ** (attempt - 1))  # full jitter
                left = guard.remaining()
                if left is not None and delay >= left:
                    raise  # no time for another attempt here: the state machine's Retry gives a fresh function
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
    guard: _Guard,
    version: Mapping[str, Any] | None,
    watch: RowWatch | None = None,
) -> DatasetStats:
    with _http_body(session, url, policy, guard, version, clock) as (chunks, progress, check):
        return store_stream(
            chunks,
            target,
            shown=redact_url(url),
            policy=policy,
            description=description,
            progress=progress,
            check=check,
            watch=watch,
        )


@contextlib.contextmanager
def http_chunks(
    url: str,
    policy: FetchPolicy,
    *,
    version: Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[tuple[Iterator[bytes], DownloadProgress, Callable[[], None]]]:
    """The body of ``url`` as the download reads it, in one attempt and without writing it anywhere: every redirect
    hop and connection checked (``_Guard``), the version compared, gzip decompressed. Yields the chunks, the
    progress (bytes received) and the check to run after each chunk (the deadline)."""
    with (
        _Guard(policy, redact_url(url)) as guard,
        _guarded_session(guard) as session,
        _http_body(session, url, policy, guard, version, clock) as body,
    ):
        yield body


@contextlib.contextmanager
def _http_body(
    session: requests.Session,
    url: str,
    policy: FetchPolicy,
    guard: _Guard,
    version: Mapping[str, Any] | None,
    clock: Callable[[], float],
) -> Iterator[tuple[Iterator[bytes], DownloadProgress, Callable[[], None]]]:
    """The response's decoded chunks after the redirects, its progress, and the check (see ``http_chunks``)."""
    import requests

    shown = redact_url(url)
    response, final = _follow_redirects(session, url, policy, guard)
    with response:
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > policy.max_bytes:
            raise SourceTooLargeError(
                f"source {shown!r} announces {int(length)} bytes, more than the maximum of "
                f"{policy.max_bytes}; raise max_source_bytes if this is expected"
            )
        check_version(final, response.headers, version)
        # A compressed body's Content-Length is not the size of what it decodes to: no percent then.
        encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
        progress = DownloadProgress(int(length) if length.isdigit() and not encoded else None, clock)

        def received() -> Iterator[bytes]:
            try:
                yield from response.iter_content(CHUNK_BYTES)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                guard.check_deadline()
                cause = redact_text(str(exc), url, final)
                _raise(
                    SourceUnavailableError(f"source {shown!r} broke off after {progress.received} bytes: {cause}"),
                    exc,
                    url,
                    final,
                )
            except requests.RequestException as exc:  # e.g. a body that is not the gzip it claims to be
                guard.check_deadline()
                cause = redact_text(str(exc), url, final)
                _raise(
                    SourceRejectedError(f"source {shown!r} sent a body that cannot be decoded: {cause}"),
                    exc,
                    url,
                    final,
                )

        def check() -> None:
            guard.received = progress.received
            guard.check_deadline()  # a fast source may keep a shut socket's reads fed; a cut-off body is never taken

        yield decoded(received(), shown), progress, check


def store_stream(
    chunks: Iterable[bytes],
    target: Target,
    *,
    shown: str,
    policy: FetchPolicy,
    description: DatasetDescription,
    progress: DownloadProgress,
    check: Callable[[], None] = lambda: None,
    watch: RowWatch | None = None,
) -> DatasetStats:
    """Validate ``chunks`` (the source's bytes, decompressed) while writing them to ``target``; return the stats.
    ``watch`` sees every row as it is validated (the data contract's check and sketch, ``mlpipe.contract``).

    Every source goes through here. ``policy.max_bytes`` limits these bytes and ``policy.min_class_rows`` is
    the validator's; ``check`` runs after every
    chunk and once at the end, and may raise (a deadline, a source that changed). The validator's
    end-of-file checks run inside the write, so nothing appears at ``target`` unless all of it passed.
    """
    validator = DatasetValidator(  # errors name where the data is
        shown, description, policy.min_class_rows, policy.task, policy.target_transform, watch
    )
    max_bytes = policy.max_bytes
    with target.stream_write() as sink:

        def body() -> Iterator[bytes]:
            for chunk in chunks:
                progress.received += len(chunk)
                if progress.received > max_bytes:
                    raise SourceTooLargeError(
                        f"source {shown!r} sent more than the maximum of {max_bytes} bytes (counted after "
                        "decompression); the transfer was stopped. Raise max_source_bytes if this is expected"
                    )
                check()
                sink.write(chunk)
                progress.tick()
                yield chunk
            check()

        stats = validator.validate(body())
        check()
    progress.finished()
    return stats


def check_version(url: str, headers: Mapping[str, str], version: Mapping[str, Any] | None) -> None:
    """SourceChangedError when the response's ETag or Last-Modified is not the one the plan's HEAD named.

    A response without the header cannot be compared and is taken (the server gave it to the HEAD only).
    """
    for field, header in (("etag", "ETag"), ("last_modified", "Last-Modified")):
        named = (version or {}).get(field)
        got = headers.get(header)
        if named and got and got != named:
            raise SourceChangedError(
                f"source {redact_url(url)!r} changed since the run was planned: {header} is {got!r}, the plan named "
                f"{named!r}; nothing was written. The state machine plans the run again (a new dataset identity)"
            )


def http_version(url: str, policy: FetchPolicy) -> dict[str, str] | None:
    """The version of an HTTP(S) source, from a HEAD: ``{"etag"}`` for a strong ETag, else ``{"last_modified"}``.

    None when the server gives neither (or only a weak ETag, which may not change with the bytes), or
    the HEAD fails in a way the GET may not (405, 5xx, a timeout): the run then keeps today's identity.
    A 404 is SourceNotReadyError; a refused URL InvalidRequestError, as for the GET.
    """
    one_try = replace(policy, attempts=1, time_budget=policy.connect_timeout + policy.read_timeout)
    try:
        with _Guard(one_try, redact_url(url)) as guard, _guarded_session(guard) as session:
            response, _ = _follow_redirects(session, url, one_try, guard, method="HEAD")
            with response:
                etag = response.headers.get("ETag") or ""
                modified = response.headers.get("Last-Modified") or ""
    except (SourceNotReadyError, InvalidRequestError):
        raise
    except PipelineError as exc:
        LOG.warning("no version of %s from a HEAD (%s): its identity is its name", redact_url(url), exc)
        return None
    if etag and not etag.startswith("W/"):
        return {"etag": etag}
    return {"last_modified": modified} if modified else None


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
        # A gzip body without Content-Encoding announces its compressed size: past it, no percent
        percent = round(100 * self.received / self.total, 1) if self.total and self.received <= self.total else None
        numbers = {"task": "download", "bytes": self.received, "total_bytes": self.total, "percent": percent}
        numbers |= {"seconds": round(seconds, 3), "mb_per_second": round(rate, 2) if rate is not None else None}
        at = f" at {rate:.1f} MB/s" if rate is not None else ""
        if done:
            message = f"download: {self.received / MB:.1f} MB in {seconds:.1f} s{at}"
        elif percent is not None and self.total:
            message = f"download: {self.received / MB:.1f} MB of {self.total / MB:.1f} MB ({percent:.0f}%){at}"
        else:
            message = f"download: {self.received / MB:.1f} MB{at}"
        LOG.info(message, extra={"progress": numbers})


def _follow_redirects(
    session: requests.Session, url: str, policy: FetchPolicy, guard: _Guard, method: str = "GET"
) -> tuple[Any, str]:
    """GET (or ``method``) ``url``, following redirects by hand so that every hop's URL and host are checked; return the
    response and the URL that answered it. Each connection checks the addresses it connects to (``_Guard``)."""
    import requests

    seen = [url]
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        shown = redact_url(current)
        check_source_url(current, allow_loopback=policy.allow_loopback)
        guard.current = shown
        timeouts = guard.timeouts(policy)
        try:
            response = session.request(method, current, stream=True, allow_redirects=False, timeout=timeouts)
        except (requests.ConnectionError, requests.Timeout) as exc:
            guard.check_deadline()
            _raise(
                SourceUnavailableError(f"source {shown!r} did not answer: {redact_text(str(exc), *seen)}"),
                exc,
                *seen,
            )
        except requests.RequestException as exc:
            guard.check_deadline()
            _raise(SourceRejectedError(f"source {shown!r}: {redact_text(str(exc), *seen)}"), exc, *seen)
        if not response.is_redirect:
            _check_status(current, response)
            return response, current
        response.close()
        location = urljoin(current, response.headers.get("Location", ""))
        if urlsplit(location).scheme not in {"http", "https"}:
            raise SourceRejectedError(
                f"source {shown!r} redirects to {redact_url(location)!r}, which is not an HTTP URL"
            )
        if location in seen:
            hops = " -> ".join(redact_url(hop) for hop in [*seen, location])
            raise SourceRejectedError(f"source {redact_url(url)!r} redirects in a loop: {hops}")
        seen.append(location)
        current = location
    hops = " -> ".join(redact_url(hop) for hop in seen)
    raise SourceRejectedError(f"source {redact_url(url)!r} redirects more than {MAX_REDIRECTS} times: {hops}")


def _check_status(url: str, response: Any) -> None:
    status = response.status_code
    if status == 200:
        return
    response.close()
    reason = f"source {redact_url(url)!r} answered HTTP {status} {response.reason or ''}".rstrip()
    if status >= 500 or status in {408, 425, 429}:
        raise SourceUnavailableError(f"{reason}; the server may recover, the run is retried")
    if status in {404, 410}:
        raise SourceNotReadyError(
            f"{reason}: the source is not there (yet); check the source URL, or deploy with SourceWaitSeconds to "
            "wait for data that arrives late"
        )
    if status in {401, 403}:
        if has_secrets(url):
            raise SourceRejectedError(
                f"{reason}: access refused; check the URL's credentials or signature (a presigned URL expires)"
            )
        raise SourceRejectedError(f"{reason}: access refused; the source must be publicly readable")
    raise SourceRejectedError(f"{reason}; expected 200 with the CSV")
