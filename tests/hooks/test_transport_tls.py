"""Hook and trigger trust the same CAs: a real TLS server on 127.0.0.1 signed by a throwaway CA."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from airflow_provider_rewards.exceptions import RewardsApiError
from airflow_provider_rewards.hooks.auth import ThanxAuth
from airflow_provider_rewards.hooks.rate_limit import RateBudget
from airflow_provider_rewards.hooks.transport import AsyncTransport, Transport, TransportSettings, ssl_verify
from airflow_provider_rewards.triggers.thanx import ThanxIssuanceJobTrigger

NO_RETRY = TransportSettings(max_retries=0)


def _certificate(subject: str, key, issuer_key, issuer: x509.Name | None, ca: bool) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
    return builder.sign(issuer_key, hashes.SHA256())


class _Scopes(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"scopes":["rewards.issue"]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def private_ca_server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """``(base_url, ca_bundle)`` of an HTTPS server whose certificate only the throwaway CA vouches for."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("rewards test CA", ca_key, ca_key, None, ca=True)
    leaf = _certificate("127.0.0.1", leaf_key, ca_key, ca.subject, ca=False)
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scopes)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", ca_file
    server.shutdown()
    server.server_close()


@pytest.fixture
def ca_environment(monkeypatch):
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def sync_scopes(base_url: str, verify: bool | str | None = None) -> object:
    transport = Transport("Thanx", base_url, ThanxAuth("c", "t"), NO_RETRY, verify=verify)
    return transport.request_json("GET", "/partner/scopes")


async def async_scopes(base_url: str, verify: bool | str | None = None) -> object:
    async with httpx.AsyncClient(verify=ssl_verify(verify)) as client:
        transport = AsyncTransport("Thanx", base_url, ThanxAuth("c", "t"), NO_RETRY, client)
        return await transport.request_json("GET", "/partner/scopes")


async def test_requests_ca_bundle_is_trusted_by_the_hook_and_the_trigger(private_ca_server, ca_environment):
    base_url, ca_file = private_ca_server
    ca_environment.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    assert sync_scopes(base_url) == {"scopes": ["rewards.issue"]}
    assert await async_scopes(base_url) == {"scopes": ["rewards.issue"]}


async def test_without_the_ca_both_refuse_the_certificate(private_ca_server, ca_environment):
    base_url, _ = private_ca_server
    with pytest.raises(RewardsApiError, match="CERTIFICATE_VERIFY_FAILED"):
        sync_scopes(base_url)
    with pytest.raises(RewardsApiError, match="CERTIFICATE_VERIFY_FAILED"):
        await async_scopes(base_url)


async def test_an_explicit_verify_wins_over_the_environment(private_ca_server, ca_environment, tmp_path):
    base_url, ca_file = private_ca_server
    ca_environment.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    assert sync_scopes(base_url, verify=str(ca_file)) == {"scopes": ["rewards.issue"]}
    assert await async_scopes(base_url, verify=str(ca_file)) == {"scopes": ["rewards.issue"]}
    assert ssl_verify(False) is False


async def test_the_triggers_own_client_trusts_the_ca_bundle_the_hook_trusts(private_ca_server, ca_environment):
    """The deferred wait uses the client the trigger builds, not a test's: it must see REQUESTS_CA_BUNDLE too."""
    base_url, ca_file = private_ca_server
    ca_environment.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    trigger = ThanxIssuanceJobTrigger(issuance_job_id="job_1", merchant_id="m", thanx_conn_id="thanx_default")
    async with trigger._client(RateBudget()) as client:
        response = await client.get(f"{base_url}/partner/scopes")
    assert response.json() == {"scopes": ["rewards.issue"]}
