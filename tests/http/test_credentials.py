"""Issue 17: a credential ends everywhere at once. Revoking an app token (with
the command line's own TokenStore on the same file, as ``token revoke`` in
another process does) or changing a password in the users file (as ``user
add`` does) closes that credential's open EventSource and WebSocket streams
within a second; the other credential's streams stay open. Real uvicorn on
loopback, real websockets and httpx clients."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import WEBSOCKET
from maildir_jmap.http.app import create_app
from maildir_jmap.tokens import TokenStore
from maildir_jmap.users import User, UsersFile, hash_password, save_users_file
from tests.conftest import PASSWORDS, LiveServer

PASSWORD = PASSWORDS["alice"]


class Stream:
    """An EventSource read in a thread; ``ended`` is when the server closed it."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.ended: float | None = None
        self.status = 0
        self.opened = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(url, headers), daemon=True)
        self._thread.start()
        assert self.opened.wait(10)

    def _read(self, url: str, headers: dict[str, str]) -> None:
        try:
            with httpx.stream("GET", url, headers=headers, timeout=30) as response:
                self.status = response.status_code
                self.opened.set()
                for _ in response.iter_lines():
                    pass
            self.ended = time.monotonic()
        except httpx.RemoteProtocolError:  # the test's server shutting down under it
            pass


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()}


@pytest.fixture
def setup(tmp_path: Path, maildir: Path) -> Iterator[tuple[LiveServer, Path, str, str]]:
    users_file = tmp_path / "users.toml"
    save_users_file(users_file, {"alice": User("alice", maildir, hash_password(PASSWORD))})
    state = tmp_path / "state"
    state.mkdir()
    info, token = TokenStore(state / "tokens.json").create("alice", "phone")
    config = Config(state_dir=state, watch=False, users_file=users_file)
    with LiveServer(create_app(config, UsersFile(users_file))) as live:
        yield live, users_file, info.id, token


def websocket(live: LiveServer, headers: dict[str, str]) -> ClientConnection:
    session = httpx.get(live.url + "/jmap/session", headers=headers).json()
    url = session["capabilities"][WEBSOCKET]["url"]
    return connect(url, subprotocols=["jmap"], additional_headers=headers)  # type: ignore[list-item]


def closed_within(ws: ClientConnection, seconds: float) -> int | None:
    """The close code if the server closes ``ws`` within ``seconds``."""
    try:
        ws.recv(timeout=seconds)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else -1
    except TimeoutError:
        return None
    return None


def test_revoking_a_token_closes_its_streams_and_only_its(
    setup: tuple[LiveServer, Path, str, str],
) -> None:
    live, _, token_id, token = setup
    bearer = {"Authorization": f"Bearer {token}"}
    url = live.url + "/jmap/eventsource/?types=*&closeafter=no&ping=0"
    by_token, by_password = Stream(url, bearer), Stream(url, basic(PASSWORD))
    assert by_token.status == by_password.status == 200
    with websocket(live, bearer) as ws_token, websocket(live, basic(PASSWORD)) as ws_password:
        revoked = time.monotonic()
        assert TokenStore(live.app.state.server.config.state_dir / "tokens.json").revoke(token_id)
        assert closed_within(ws_token, 2) == 1008
        time.sleep(0.2)
        assert by_token.ended is not None
        assert by_token.ended - revoked < 1.5
        assert by_password.ended is None
        assert closed_within(ws_password, 0.5) is None  # still open
    assert httpx.get(live.url + "/jmap/session", headers=bearer).status_code == 401


def test_changing_a_password_closes_the_old_passwords_streams(
    setup: tuple[LiveServer, Path, str, str], maildir: Path
) -> None:
    live, users_file, _, token = setup
    url = live.url + "/jmap/eventsource/?types=*&closeafter=no&ping=0"
    by_password = Stream(url, basic(PASSWORD))
    by_token = Stream(url, {"Authorization": f"Bearer {token}"})
    with websocket(live, basic(PASSWORD)) as ws_password:
        changed = time.monotonic()
        save_users_file(users_file, {"alice": User("alice", maildir, hash_password("new-one"))})
        assert closed_within(ws_password, 2) == 1008
    time.sleep(0.2)
    assert by_password.ended is not None
    assert by_password.ended - changed < 1.5
    assert by_token.ended is None  # the app token is another credential
    assert httpx.get(live.url + "/jmap/session", headers=basic(PASSWORD)).status_code == 401
    assert httpx.get(live.url + "/jmap/session", headers=basic("new-one")).status_code == 200
