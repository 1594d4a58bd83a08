"""Many users in one process: isolation, concurrent opening, idle accounts."""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from maildir_jmap.config import Config
from maildir_jmap.http.app import create_app
from maildir_jmap.server.accounts import AccountPool
from maildir_jmap.users import UserDirectory
from tests.conftest import PASSWORDS, LiveServer

ALICE = ("alice", PASSWORDS["alice"])
BOB = ("bob", PASSWORDS["bob"])


def test_a_broken_maildir_fails_only_its_user(tmp_path: Path, users: UserDirectory) -> None:
    bob = users.get("bob")
    assert bob is not None
    not_a_dir = tmp_path / "bob-is-a-file"
    not_a_dir.write_text("oops")
    broken = UserDirectory({"alice": users.get("alice"), "bob": replace(bob, maildir=not_a_dir)})  # type: ignore[dict-item]
    config = Config(state_dir=tmp_path / "state", watch=False)
    with LiveServer(create_app(config, broken)) as server:
        bad = httpx.get(server.url + "/jmap/session", auth=BOB)
        assert bad.status_code == 503
        assert bad.headers["content-type"] == "application/problem+json"
        good = httpx.get(server.url + "/jmap/session", auth=ALICE)
        assert good.status_code == 200


def test_one_slow_open_does_not_hold_up_another_user(
    tmp_path: Path, users: UserDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = AccountPool._open
    gate = threading.Event()

    def slow_for_bob(self: AccountPool, user: Any) -> Any:
        if user.name == "bob":
            gate.wait(10)  # bob's huge Maildir is being indexed
        return original(self, user)

    monkeypatch.setattr(AccountPool, "_open", slow_for_bob)
    config = Config(state_dir=tmp_path / "state", watch=False)
    with LiveServer(create_app(config, users)) as server:
        bob_thread = threading.Thread(
            target=lambda: httpx.get(server.url + "/jmap/session", auth=BOB, timeout=30)
        )
        bob_thread.start()
        time.sleep(0.3)
        started = time.monotonic()
        assert httpx.get(server.url + "/jmap/session", auth=ALICE, timeout=30).status_code == 200
        assert time.monotonic() - started < 5
        gate.set()
        bob_thread.join(30)


def test_idle_accounts_close_and_reopen(tmp_path: Path, users: UserDirectory) -> None:
    config = Config(state_dir=tmp_path / "state", idle_close=0.5)
    app = create_app(config, users)
    state = app.state.server
    with LiveServer(app) as server:
        assert httpx.get(server.url + "/jmap/session", auth=ALICE).status_code == 200
        assert len(state.pool.open_accounts()) == 1
        assert state.pool.watcher_count() == 1
        deadline = time.monotonic() + 10
        while state.pool.open_accounts() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert state.pool.open_accounts() == []
        assert state.pool.watcher_count() == 0
        # The next request opens it again, with its state intact.
        session = httpx.get(server.url + "/jmap/session", auth=ALICE)
        assert session.status_code == 200
        assert len(state.pool.open_accounts()) == 1


def test_an_account_another_server_owns_is_refused_until_it_lets_go(
    tmp_path: Path, users: UserDirectory
) -> None:
    """Two servers on one state directory (issue 20): each account is served by the
    one that opened it first; the other answers 503 with Retry-After, for the API and
    the WebSocket handshake alike, and serves it once the owner closed it."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    state = tmp_path / "state"
    first = create_app(Config(state_dir=state, idle_close=0.5), users)
    second = create_app(Config(state_dir=state, watch=False), users)
    with LiveServer(first) as one, LiveServer(second) as two:
        assert httpx.get(one.url + "/jmap/session", auth=ALICE).status_code == 200
        assert httpx.get(two.url + "/jmap/session", auth=BOB).status_code == 200
        refused = httpx.post(
            two.url + "/jmap/api/", auth=ALICE, json={"using": [], "methodCalls": []}
        )
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "30"
        assert "served by another process" in refused.json()["detail"]
        assert httpx.get(one.url + "/jmap/session", auth=BOB).status_code == 503
        basic = "Basic " + base64.b64encode(":".join(ALICE).encode()).decode()
        with pytest.raises(InvalidStatus) as handshake:
            connect(
                two.url.replace("http", "ws") + "/jmap/ws/",
                subprotocols=["jmap"],  # type: ignore[list-item]
                additional_headers={"Authorization": basic},
            )
        assert handshake.value.response.status_code == 503
        deadline = time.monotonic() + 10
        while first.state.server.pool.open_accounts() and time.monotonic() < deadline:
            time.sleep(0.1)  # the first server closes alice's account once idle
        assert httpx.get(two.url + "/jmap/session", auth=ALICE).status_code == 200
