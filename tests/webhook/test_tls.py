"""HTTPS serving of the webhook (service.serve and service.tls), with a CA made for the test."""

import datetime
import http.client
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from cryptography import x509

from service import certificates
from service.serve import TLSRequiredError, build_server
from service.tls import ReloadingContext

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


class Authority:
    """A test CA (service.certificates, the product's own X.509 code) issuing 127.0.0.1 certificates."""

    first_serial: int
    """The serial number of the pair the ``pki`` fixture serves first."""

    def __init__(self, directory: Path) -> None:
        self.pair = certificates.new_ca("test CA", NOW, DAY)
        self.cafile = directory / "ca.crt"
        self.cafile.write_bytes(self.pair.cert)

    def issue(self) -> tuple[bytes, bytes, int]:
        """A new serving pair: (certificate PEM, key PEM, serial number)."""
        pair = certificates.issue(
            self.pair,
            "webhook",
            NOW,
            DAY,
            dns_names=["kubeflow-extension-webhook.kubeflow-extension.svc"],
            ip_addresses=["127.0.0.1"],
        )
        return pair.cert, pair.key, pair.certificate().serial_number


def write_atomically(path: Path, data: bytes) -> None:
    """Like the kubelet's swap of a Secret volume: a new file renamed over the old one."""
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


Pki = tuple[Authority, Path, Path]
"""The test CA, and the files of the certificate and key it issued first."""


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    authority = Authority(tmp_path)
    cert, key, authority.first_serial = authority.issue()
    certfile, keyfile = tmp_path / "tls.crt", tmp_path / "tls.key"
    certfile.write_bytes(cert)
    keyfile.write_bytes(key)
    return authority, certfile, keyfile


def serving(
    app: str, certfile: Path | None, keyfile: Path | None, require_tls: bool = True
) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = build_server(
        app,
        "127.0.0.1",
        0,
        certfile=None if certfile is None else str(certfile),
        keyfile=None if keyfile is None else str(keyfile),
        require_tls=require_tls,
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    return server, thread, sock.getsockname()[1]


@pytest.fixture
def https_server(pki: Pki) -> Iterator[int]:
    _, certfile, keyfile = pki
    server, thread, port = serving("webhook.app:app", certfile, keyfile)
    yield port
    server.should_exit = True
    thread.join(10)


def client_context(authority: Authority, **versions: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(authority.cafile))
    for name, value in versions.items():
        setattr(context, name, value)
    return context


def served_serial(port: int, authority: Authority) -> int:
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        client_context(authority).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None, "the server sent no certificate"
        return x509.load_der_x509_certificate(der).serial_number


def get(port: int, authority: Authority, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=client_context(authority), timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_webhook_is_served_over_https(pki: Pki, https_server: int) -> None:
    authority, _, _ = pki
    status, body = get(https_server, authority, "/healthz")
    assert status == 200
    assert b"ok" in body
    assert served_serial(https_server, authority) == authority.first_serial


def test_an_idle_connection_stays_open_past_uvicorns_default(pki: Pki, https_server: int) -> None:
    """The API server reuses idle connections for 90 s; one closed under it fails an admission with EOF."""
    authority, _, _ = pki
    connection = http.client.HTTPSConnection(
        "127.0.0.1", https_server, context=client_context(authority), timeout=10
    )
    try:
        connection.request("GET", "/healthz")
        first = connection.getresponse()
        first.read()
        assert first.getheader("connection") != "close"
        time.sleep(uvicorn.Config("webhook.app:app").timeout_keep_alive + 1)
        connection.request("GET", "/healthz")  # on the same socket: http.client reconnects only when told
        assert connection.getresponse().status == 200
    finally:
        connection.close()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_below_1_2_is_refused(pki: Pki, https_server: int) -> None:
    authority, _, _ = pki
    context = client_context(authority)
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", https_server)) as raw, pytest.raises(ssl.SSLError):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
    assert ReloadingContext(*map(str, pki[1:])).current.minimum_version == ssl.TLSVersion.TLSv1_2


def test_a_rotated_certificate_is_served_to_new_connections(pki: Pki, https_server: int) -> None:
    authority, certfile, keyfile = pki
    assert served_serial(https_server, authority) == authority.first_serial
    cert, key, serial = authority.issue()
    # Half-way through a rotation (new certificate, old key) the previous pair is kept.
    write_atomically(certfile, cert)
    assert served_serial(https_server, authority) == authority.first_serial
    write_atomically(keyfile, key)
    assert served_serial(https_server, authority) == serial
    assert get(https_server, authority, "/readyz")[0] == 200


def test_reload_happens_only_when_the_files_change(pki: Pki) -> None:
    authority, certfile, keyfile = pki
    context = ReloadingContext(str(certfile), str(keyfile))
    assert context.reload_if_changed() is False
    cert, key, _ = authority.issue()
    write_atomically(keyfile, key)
    write_atomically(certfile, cert)
    assert context.reload_if_changed() is True
    assert context.reload_if_changed() is False
    certfile.unlink()
    assert context.reload_if_changed() is False  # a missing file keeps the loaded pair


def test_startup_fails_without_a_usable_certificate(tmp_path: Path, pki: Pki) -> None:
    _, certfile, _ = pki
    with pytest.raises(FileNotFoundError):
        ReloadingContext(str(tmp_path / "missing.crt"))
    with pytest.raises(ssl.SSLError):
        ReloadingContext(str(certfile), str(certfile))  # no key in the certificate file


def test_webhook_requires_tls() -> None:
    with pytest.raises(TLSRequiredError):
        build_server("webhook.app:app", "127.0.0.1", 8443, certfile=None, keyfile=None, require_tls=True)


def test_plain_http_is_possible_where_allowed() -> None:
    server, thread, port = serving("webhook.app:app", None, None, require_tls=False)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        server.should_exit = True
        thread.join(10)
