"""Shared fixtures: temporary Maildirs, users, the real ASGI app over httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from maildir_jmap.config import Config
from maildir_jmap.demo import create_demo_maildir
from maildir_jmap.http.app import create_app
from maildir_jmap.users import User, UserDirectory, hash_password
from tests.ports import free_port

# The loopback SMTP server fixture (aiosmtpd) for submission tests.
pytest_plugins = ["tests.smtp"]

PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}


@pytest.fixture(autouse=True)
def no_system_dovecot_roles(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server reads special_use roles from the machine's Dovecot config when it
    is given none (Dovecot is the source of truth); tests are not to depend on what
    /etc/dovecot says. A test that names a dovecot.conf gets it read for real."""
    from maildir_jmap import dovecot_config
    from maildir_jmap.server import server as server_module

    def read(config: Path | None = None) -> dovecot_config.DovecotConfig | None:
        return dovecot_config.read(config) if config else None

    monkeypatch.setattr(server_module, "read_dovecot", read)


@pytest.fixture(scope="session")
def password_hashes() -> dict[str, str]:
    return {name: hash_password(pw) for name, pw in PASSWORDS.items()}


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    return create_demo_maildir(tmp_path / "Maildir", user="alice")


@pytest.fixture
def users(tmp_path: Path, password_hashes: dict[str, str]) -> UserDirectory:
    entries = {}
    for name, digest in password_hashes.items():
        root = create_demo_maildir(tmp_path / f"{name}-Maildir", user=name)
        entries[name] = User(name, root, digest)
    return UserDirectory(entries)


AppFactory = Callable[..., Any]


@pytest.fixture
def make_app(tmp_path: Path, users: UserDirectory) -> AppFactory:
    def factory(**kwargs: Any) -> Any:
        config = kwargs.pop("config", None) or Config(state_dir=tmp_path / "state", watch=False)
        return create_app(config, kwargs.pop("users", users), **kwargs)

    return factory


def client_for(app: Any, user: str | None = "alice") -> httpx.AsyncClient:
    auth = (user, PASSWORDS[user]) if user else None
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://jmap.test", auth=auth
    )


@pytest.fixture
async def client(make_app: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_app()) as c:
        yield c


class LiveServer:
    """A real uvicorn serving ``app`` on a loopback port, in a background thread;
    over TLS when given a (certificate, key) pair."""

    def __init__(
        self,
        app: Any,
        tls: tuple[Path, Path] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        import threading

        import uvicorn

        self.app = app
        self.port = port or free_port()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://{host}:{self.port}"
        config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=1,  # streams a test left open end then
            ssl_certfile=str(tls[0]) if tls else None,
            ssl_keyfile=str(tls[1]) if tls else None,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        import time

        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
