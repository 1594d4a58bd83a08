"""Third-party JMAP clients against a real server: uvicorn over TLS on loopback,
serving a generated Maildir (threads, multipart/alternative, attachments,
non-ASCII headers; bench/generate.py), sending through a real SMTP server
(aiosmtpd). Nothing here speaks JMAP itself: the clients under test do."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.generate import generate
from maildir_jmap.config import Config
from maildir_jmap.delivery.scheduler import SendingSettings
from maildir_jmap.delivery.smtp import Smarthost
from maildir_jmap.http.app import create_app
from maildir_jmap.tokens import TokenStore
from maildir_jmap.users import User, UserDirectory, hash_password
from tests.conftest import LiveServer
from tests.smtp import SmtpServer

USER = "alice"
PASSWORD = "interop-secret"
ADDRESS = "alice@example.org"
MESSAGES = 300


@dataclass(frozen=True)
class Deployment:
    url: str
    host: str  # host:port, as jmapc wants it
    ca: Path  # the self-signed certificate clients must trust
    token: str  # an app token for Bearer-only clients (jmap-jam)
    maildir: Path
    smtp: SmtpServer


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "maildir-jmap interop")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def deployment(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Deployment]:
    maildir = generate(tmp_path / "Maildir", MESSAGES, seed=16).root
    users = UserDirectory(
        {USER: User(USER, maildir, hash_password(PASSWORD), addresses=(ADDRESS,))}
    )
    state = tmp_path / "state"
    config = Config(
        state_dir=state,
        sending=SendingSettings(smarthost=Smarthost(port=smtp_server.port, timeout=5)),
    )
    tokens = TokenStore(state / "tokens.json")
    _, token = tokens.create(USER, label="interop")
    tls = self_signed(tmp_path)
    with LiveServer(create_app(config, users, tokens=tokens), tls=tls) as server:
        yield Deployment(
            server.url, f"127.0.0.1:{server.port}", tls[0], token, maildir, smtp_server
        )
