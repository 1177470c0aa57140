"""The source guard: every address a source URL can name or resolve to is checked, and the download
connects to exactly the address that was checked.

The guard is tested by calling it: no test here sends anything to an address other than 127.0.0.1
(the tests that connect hold a tripwire that refuses, inside this process, any other destination).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests.adapters
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mlpipe.exceptions import InvalidRequestError, SourceUnavailableError
from mlpipe.fetch import FetchPolicy, check_source_url, fetch_dataset
from tests.conftest import SAMPLE
from tests.stores import target

# Public addresses a stubbed resolver hands out: never connected to (the tripwire refuses them).
PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"

# Literal hosts that name this machine, the cloud metadata service or another special range.
LOOPBACK = [
    "http://127.0.0.1/x",
    "http://127.9.8.7/x",
    "http://[::1]/x",
    "http://[::ffff:127.0.0.1]/x",
    "http://[::ffff:7f00:1]/x",
    "http://[0:0:0:0:0:ffff:127.0.0.1]/x",
    # odd IPv4 spellings the resolver accepts
    "http://2130706433/x",
    "http://0177.0.0.1/x",
    "http://127.1/x",
    "http://0x7f.1/x",
    "http://0x7f000001/x",
    "http://017700000001/x",
    "http://127.000.000.001/x",
    "http://127.0.0.1./x",
    "http://2130706433./x",
    "http://localhost/x",
    "http://LocalHost./x",
    "http://api.localhost/x",
]
SPECIAL = [
    # loopback inside another IPv6 address: not this machine's loopback, and never a source
    "http://[::127.0.0.1]/x",  # IPv4-compatible (deprecated)
    "http://[2002:7f00:1::1]/x",  # 6to4 of 127.0.0.1
    "http://[64:ff9b::7f00:1]/x",  # NAT64 of 127.0.0.1
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
    "http://[2002:a9fe:a9fe::1]/",  # 6to4 of the metadata address
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of it
    "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",  # Teredo, client 169.254.169.254
    "http://2852039166/",  # 169.254.169.254 in decimal
    "http://0xa9fea9fe/",
    "http://0251.0376.0251.0376/",
    "http://169.254.43518/",
    "http://[fd00:ec2::254]/",
    "http://100.100.100.200/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fc00::1]/",
    "http://[fd12:3456:789a::1]/",
    "http://[fec0::1]/",  # site-local (deprecated)
    "http://[::]/",
    "http://[::ffff:0.0.0.0]/",
    "http://[ff02::1]/",
    "http://[ff0e::1]/",
    "http://[100::1]/",  # discard-only
    "http://[2001:db8::1]/",  # documentation
    "http://[2001:10::1]/",  # ORCHID
    "http://[::ffff:10.0.0.1]/",
    "http://0.0.0.0/",
    "http://0/",
    "http://0.1.2.3/",
    "http://10.0.0.1/",
    "http://10.1/",
    "http://172.16.0.1/",
    "http://172.31.255.254/",
    "http://192.168.1.1/",
    "http://3232235777/",  # 192.168.1.1
    "http://100.64.0.1/",  # shared address space
    "http://192.0.0.1/",
    "http://192.0.2.1/",
    "http://198.18.0.1/",
    "http://198.51.100.1/",
    "http://203.0.113.1/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://metadata.google.internal/x",
    "http://METADATA/x",
]
PUBLIC = [
    "https://example.org/iris.data",
    f"http://{PUBLIC_V4}/iris.data",
    f"http://[{PUBLIC_V6}]/iris.data",
    f"http://[::ffff:{PUBLIC_V4}]/iris.data",
    "http://[2002:5db8:d70e::1]/iris.data",  # 6to4 of a public address
    "https://data.example.com:8443/path/iris.data",
]


@pytest.mark.parametrize("url", LOOPBACK + SPECIAL)
def test_a_special_address_is_refused(url: str) -> None:
    with pytest.raises(InvalidRequestError, match=r"source URL .* points at"):
        check_source_url(url)


@pytest.mark.parametrize("url", SPECIAL)
def test_allowing_loopback_allows_nothing_else(url: str) -> None:
    with pytest.raises(InvalidRequestError, match=r"source URL .* points at"):
        check_source_url(url, allow_loopback=True)


@pytest.mark.parametrize("url", LOOPBACK)
def test_local_runs_may_use_loopback_however_it_is_spelled(url: str) -> None:
    check_source_url(url, allow_loopback=True)


@pytest.mark.parametrize("url", PUBLIC)
def test_a_public_address_or_name_is_accepted(url: str) -> None:
    check_source_url(url)


def test_the_message_says_what_where_and_what_to_do() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        check_source_url("http://[::ffff:169.254.169.254]/latest/meta-data/")
    message = str(refused.value)
    assert "169.254.169.254" in message
    assert "link-local or cloud metadata" in message
    with pytest.raises(InvalidRequestError) as private:
        check_source_url("http://10.1.2.3/data.csv")
    assert "private" in str(private.value)
    assert "a public http(s) source" in str(private.value)


def stub_resolver(monkeypatch: pytest.MonkeyPatch, answers: dict[str, Callable[[], list[str]]]) -> list[str]:
    """``socket.getaddrinfo`` answers the names in ``answers`` (each call asks again); others as usual.

    Returns the list of the names looked up, in order.
    """
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        flags = kwargs.get("flags", args[3] if len(args) > 3 else 0)
        if name.rstrip(".").lower() not in answers or flags & socket.AI_NUMERICHOST:  # numeric: no lookup
            return real(host, port, *args, **kwargs)
        asked.append(name)
        results = []
        for address in answers[name.rstrip(".").lower()]():
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            where = (address, port or 0, 0, 0) if family == socket.AF_INET6 else (address, port or 0)
            results.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", where))
        return results

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize(
    "addresses",
    [
        ["127.0.0.1"],
        ["::ffff:169.254.169.254"],
        ["10.0.0.7"],
        ["fd00::7"],
        [PUBLIC_V4, "169.254.169.254"],  # every address counts, not only the first
        [PUBLIC_V6, "::1"],
    ],
)
def test_a_name_is_refused_when_any_address_it_resolves_to_is(
    monkeypatch: pytest.MonkeyPatch, addresses: list[str]
) -> None:
    stub_resolver(monkeypatch, {"data.example": lambda: addresses})
    with pytest.raises(InvalidRequestError, match="points at"):
        check_source_url("https://data.example/iris.data", resolve=True)


def test_a_name_with_public_addresses_only_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    stub_resolver(monkeypatch, {"data.example": lambda: [PUBLIC_V4, PUBLIC_V6]})
    check_source_url("https://data.example/iris.data", resolve=True)


@pytest.fixture
def tripwire(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Refuse, in this process, every connection to an address other than 127.0.0.1; yield those attempted."""
    real = socket.socket.connect
    attempted: list[Any] = []

    def connect(self: socket.socket, address: Any) -> None:
        if address[0] != "127.0.0.1":
            attempted.append(address[:2])
            raise ConnectionRefusedError(111, "refused by the test: only 127.0.0.1 may be reached")
        real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempted


def policy(**overrides: Any) -> FetchPolicy:
    return FetchPolicy(
        **({"max_bytes": 1_000_000, "attempts": 1, "connect_timeout": 2.0, "read_timeout": 2.0} | overrides)
    )


def port_of(http_server: Any) -> int:
    return int(http_server.server_address[1])


def test_a_name_that_rebinds_to_loopback_after_the_check_never_reaches_it(
    tmp_path: Path, http_server: Any, monkeypatch: pytest.MonkeyPatch, tripwire: list[Any]
) -> None:
    # DNS rebinding: the name is public when checked, this machine when the HTTP client looks it up again
    answers = iter([[PUBLIC_V4]])
    asked = stub_resolver(monkeypatch, {"data.example": lambda: next(answers, ["127.0.0.1"])})
    url = f"http://data.example:{port_of(http_server)}/iris.data"
    dataset = target(str(tmp_path / "dataset.csv"))
    with pytest.raises(SourceUnavailableError, match="did not answer"):
        fetch_dataset(url, dataset, policy(allow_loopback=False))
    assert http_server.requests == []  # the 127.0.0.1 server never saw the request
    assert tripwire == [(PUBLIC_V4, port_of(http_server))]  # the download went for the address it checked
    assert len(asked) == 1  # looked up once, for the check and the connection both
    assert not dataset.exists()


def test_a_redirect_to_a_special_address_is_refused_before_connecting(
    tmp_path: Path, http_server: Any, tripwire: list[Any]
) -> None:
    def redirect(handler: Any) -> None:
        handler.send_response(302)
        handler.send_header("Location", "http://[::ffff:169.254.169.254]/latest/meta-data/")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    http_server.routes["/moved"] = redirect
    dataset = target(str(tmp_path / "dataset.csv"))
    with pytest.raises(InvalidRequestError, match="link-local or cloud metadata"):
        fetch_dataset(http_server.url("/moved"), dataset, policy(allow_loopback=True))
    assert tripwire == []
    assert not dataset.exists()


def test_a_redirect_to_a_name_resolving_to_a_special_address_is_refused(
    tmp_path: Path, http_server: Any, monkeypatch: pytest.MonkeyPatch, tripwire: list[Any]
) -> None:
    stub_resolver(monkeypatch, {"internal.example": lambda: ["10.0.0.5"]})

    def redirect(handler: Any) -> None:
        handler.send_response(302)
        handler.send_header("Location", "http://internal.example/secret.csv")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    http_server.routes["/moved"] = redirect
    dataset = target(str(tmp_path / "dataset.csv"))
    with pytest.raises(InvalidRequestError, match=r"private.*10\.0\.0\.5"):
        fetch_dataset(http_server.url("/moved"), dataset, policy(allow_loopback=True))
    assert tripwire == []
    assert not dataset.exists()


def test_a_local_run_still_downloads_from_loopback_by_name_and_by_address(
    tmp_path: Path, http_server: Any, tripwire: list[Any]
) -> None:
    port = port_of(http_server)
    for number, url in enumerate([f"http://127.0.0.1:{port}/iris.data", f"http://localhost:{port}/iris.data"]):
        dataset = target(str(tmp_path / f"dataset-{number}.csv"))
        stats = fetch_dataset(url, dataset, policy(allow_loopback=True))
        assert stats.rows == 150
        assert dataset.read_bytes() == SAMPLE.read_bytes()
    assert {address[0] for address in tripwire} <= {"::1"}  # localhost may also name ::1, where nothing listens


def test_loopback_is_refused_at_connection_time_when_not_allowed(
    tmp_path: Path, http_server: Any, monkeypatch: pytest.MonkeyPatch, tripwire: list[Any]
) -> None:
    stub_resolver(monkeypatch, {"data.example": lambda: ["127.0.0.1"]})
    dataset = target(str(tmp_path / "dataset.csv"))
    with pytest.raises(InvalidRequestError, match="points at this machine"):
        fetch_dataset(f"http://data.example:{port_of(http_server)}/iris.data", dataset, policy())
    assert http_server.requests == []
    assert tripwire == []


# --- HTTPS: the connection goes to the checked address, TLS still speaks to (and verifies) the name ----------
def certificate_files(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """A test CA, and a certificate for ``name`` signed by it: (CA file, certificate file, key file)."""
    now = dt.datetime.now(dt.UTC)

    def build(subject: str, key: Any, issuer: str, signer: Any, *, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("mlpipe test CA", ca_key, "mlpipe test CA", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = build(name, key, "mlpipe test CA", ca_key, ca=False)
    files = (folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


@contextlib.contextmanager
def https_server(folder: Path, name: str, *, pause: float = 0.0) -> Iterator[Any]:
    """An HTTPS server on 127.0.0.1 with a certificate for ``name``; records each SNI and Host header. With
    ``pause``, the body (the sample) drips 8 bytes at a time, ``pause`` seconds apart, for at most 12 s."""
    ca_file, cert_file, key_file = certificate_files(folder, name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    seen: dict[str, list[Any]] = {"sni": [], "host": []}
    context.sni_callback = lambda sock, server_name, ctx: seen["sni"].append(server_name)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen["host"].append(self.headers.get("Host"))
            body = SAMPLE.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not pause:
                self.wfile.write(body)
                return
            started = time.monotonic()
            with contextlib.suppress(OSError):  # the client went away
                for start in range(0, len(body), 8):
                    if time.monotonic() - started > 12:
                        return
                    self.wfile.write(body[start : start + 8])
                    self.wfile.flush()
                    time.sleep(pause)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    server.seen = seen  # type: ignore[attr-defined]
    server.ca_file = ca_file  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_https_connects_to_the_checked_address_and_verifies_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tripwire: list[Any]
) -> None:
    with https_server(tmp_path, "data.example") as server:
        monkeypatch.setattr(requests.adapters, "DEFAULT_CA_BUNDLE_PATH", str(server.ca_file))
        asked = stub_resolver(monkeypatch, {"data.example": lambda: ["127.0.0.1"]})
        port = server.server_address[1]
        dataset = target(str(tmp_path / "dataset.csv"))
        stats = fetch_dataset(f"https://data.example:{port}/iris.data", dataset, policy(allow_loopback=True))
        assert stats.rows == 150
        assert server.seen["sni"] == ["data.example"]  # TLS spoke to the name...
        assert server.seen["host"] == [f"data.example:{port}"]
        assert asked == ["data.example"]  # ...over a connection to the one address checked
        assert tripwire == []


def test_https_refuses_a_certificate_for_another_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tripwire: list[Any]
) -> None:
    with https_server(tmp_path, "other.example") as server:
        monkeypatch.setattr(requests.adapters, "DEFAULT_CA_BUNDLE_PATH", str(server.ca_file))
        stub_resolver(monkeypatch, {"data.example": lambda: ["127.0.0.1"]})
        dataset = target(str(tmp_path / "dataset.csv"))
        url = f"https://data.example:{server.server_address[1]}/iris.data"
        with pytest.raises(SourceUnavailableError, match="certificate verify failed"):
            fetch_dataset(url, dataset, policy(allow_loopback=True))
        assert server.seen["host"] == []
        assert not dataset.exists()
