"""Third-party JMAP clients against a real server: uvicorn over TLS on loopback,
serving a generated Maildir (threads, multipart/alternative, attachments,
non-ASCII headers; bench/generate.py), sending through a real SMTP server
(aiosmtpd). Nothing here speaks JMAP itself: the clients under test do."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.generate import generate
from maildir_jmap.config import Config
from maildir_jmap.delivery.scheduler import SendingSettings
from maildir_jmap.delivery.smtp import Smarthost
from maildir_jmap.http.app import create_app
from maildir_jmap.tokens import TokenStore
from maildir_jmap.users import User, UserDirectory, hash_password
from tests.conftest import LiveServer
from tests.smtp import SmtpServer
from tests.tls import self_signed

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
