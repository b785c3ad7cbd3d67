"""HTTPS serving of the webhook (service.serve and service.tls), with a CA made for the test."""

import datetime
import http.client
import os
import socket
import ssl
import threading
import time

import pytest
from cryptography import x509

from service import certificates
from service.serve import TLSRequiredError, build_server
from service.tls import ReloadingContext

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


class Authority:
    """A test CA (service.certificates, the product's own X.509 code) issuing 127.0.0.1 certificates."""

    def __init__(self, directory):
        self.pair = certificates.new_ca("test CA", NOW, DAY)
        self.cafile = directory / "ca.crt"
        self.cafile.write_bytes(self.pair.cert)

    def issue(self):
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


def write_atomically(path, data):
    """Like the kubelet's swap of a Secret volume: a new file renamed over the old one."""
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


@pytest.fixture
def pki(tmp_path):
    authority = Authority(tmp_path)
    cert, key, authority.first_serial = authority.issue()
    certfile, keyfile = tmp_path / "tls.crt", tmp_path / "tls.key"
    certfile.write_bytes(cert)
    keyfile.write_bytes(key)
    return authority, certfile, keyfile


def serving(app, certfile, keyfile, require_tls=True):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = build_server(
        app,
        "127.0.0.1",
        0,
        certfile=certfile and str(certfile),
        keyfile=keyfile and str(keyfile),
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
def https_server(pki):
    _, certfile, keyfile = pki
    server, thread, port = serving("webhook.app:app", certfile, keyfile)
    yield port
    server.should_exit = True
    thread.join(10)


def client_context(authority, **versions):
    context = ssl.create_default_context(cafile=str(authority.cafile))
    for name, value in versions.items():
        setattr(context, name, value)
    return context


def served_serial(port, authority):
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        client_context(authority).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def get(port, authority, path):
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=client_context(authority), timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_webhook_is_served_over_https(pki, https_server):
    authority, _, _ = pki
    status, body = get(https_server, authority, "/healthz")
    assert status == 200
    assert b"ok" in body
    assert served_serial(https_server, authority) == authority.first_serial


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_below_1_2_is_refused(pki, https_server):
    authority, _, _ = pki
    context = client_context(authority)
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", https_server)) as raw, pytest.raises(ssl.SSLError):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
    assert ReloadingContext(*map(str, pki[1:])).current.minimum_version == ssl.TLSVersion.TLSv1_2


def test_a_rotated_certificate_is_served_to_new_connections(pki, https_server):
    authority, certfile, keyfile = pki
    assert served_serial(https_server, authority) == authority.first_serial
    cert, key, serial = authority.issue()
    # Half-way through a rotation (new certificate, old key) the previous pair is kept.
    write_atomically(certfile, cert)
    assert served_serial(https_server, authority) == authority.first_serial
    write_atomically(keyfile, key)
    assert served_serial(https_server, authority) == serial
    assert get(https_server, authority, "/readyz")[0] == 200


def test_reload_happens_only_when_the_files_change(pki):
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


def test_startup_fails_without_a_usable_certificate(tmp_path, pki):
    _, certfile, _ = pki
    with pytest.raises(FileNotFoundError):
        ReloadingContext(str(tmp_path / "missing.crt"))
    with pytest.raises(ssl.SSLError):
        ReloadingContext(str(certfile), str(certfile))  # no key in the certificate file


def test_webhook_requires_tls():
    with pytest.raises(TLSRequiredError):
        build_server("webhook.app:app", "127.0.0.1", 8443, certfile=None, keyfile=None, require_tls=True)


def test_plain_http_is_possible_where_allowed():
    server, thread, port = serving("webhook.app:app", None, None, require_tls=False)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        server.should_exit = True
        thread.join(10)
