"""mail.account_state (issue 20): an account's state kept beside the user's mail, so
moving the home to another backend keeps its ids, states and change log. Two apps
with their own state roots stand for two backends; each reads the same home."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CORE, MAIL
from maildir_jmap.server.routing import Routing
from maildir_jmap.users import UserDirectory
from tests.conftest import PASSWORDS, AppFactory, client_for


async def call(client: httpx.AsyncClient, name: str, **args: Any) -> dict[str, Any]:
    session = (await client.get("/jmap/session")).json()
    account = session["primaryAccounts"][MAIL]
    body = {"using": [CORE, MAIL], "methodCalls": [[name, {"accountId": account, **args}, "c"]]}
    response = await client.post("/jmap/api/", json=body)
    ((method, result, _),) = response.json()["methodResponses"]
    assert method == name, result
    out: dict[str, Any] = result
    return out


async def move(make_app: AppFactory, tmp_path: Path, template: str | None) -> dict[str, Any]:
    """Change alice's mailboxes on backend one, close it there, resync on backend two."""
    one = make_app(config=Config(state_dir=tmp_path / "one", watch=False, account_state=template))
    async with client_for(one) as client:
        before = await call(client, "Mailbox/get", ids=None)
        made = await call(client, "Mailbox/set", create={"n": {"name": "Moved"}})
        moved_id = made["created"]["n"]["id"]
        one.state.server.pool.close_all()  # the user leaves this backend
    two = make_app(config=Config(state_dir=tmp_path / "two", watch=False, account_state=template))
    async with client_for(two) as client:
        changes = await call(client, "Mailbox/changes", sinceState=before["state"])
        after = await call(client, "Mailbox/get", ids=None)
    return {"changes": changes, "moved_id": moved_id, "before": before, "after": after}


async def test_a_user_whose_state_moves_with_the_home_resyncs_without_loss(
    make_app: AppFactory, tmp_path: Path, users: UserDirectory
) -> None:
    got = await move(make_app, tmp_path, "{home}/.maildir-jmap")
    assert got["changes"]["created"] == [got["moved_id"]]  # the change log came along
    ids = {m["name"]: m["id"] for m in got["after"]["list"]}
    assert {m["name"]: m["id"] for m in got["before"]["list"]}.items() <= ids.items()
    alice = users.get("alice")
    assert alice is not None
    home = alice.home_dir() / ".maildir-jmap"
    assert (home / "owner.lock").exists()
    link = next((tmp_path / "two" / "accounts").iterdir())
    assert link.is_symlink()
    assert link.resolve() == home.resolve()


async def test_without_it_a_moved_user_is_told_to_resync_never_given_wrong_changes(
    make_app: AppFactory, tmp_path: Path
) -> None:
    """RFC 8620 §5.2: a state this backend never issued is cannotCalculateChanges."""
    one = make_app(config=Config(state_dir=tmp_path / "one", watch=False))
    async with client_for(one) as client:
        before = await call(client, "Mailbox/get", ids=None)
        one.state.server.pool.close_all()
    two = make_app(config=Config(state_dir=tmp_path / "two", watch=False))
    async with client_for(two) as client:
        session = (await client.get("/jmap/session")).json()
        account = session["primaryAccounts"][MAIL]
        args = {"accountId": account, "sinceState": before["state"]}
        body = {"using": [CORE, MAIL], "methodCalls": [["Mailbox/changes", args, "c"]]}
        response = (await client.post("/jmap/api/", json=body)).json()
    ((method, result, _),) = response["methodResponses"]
    assert method == "error"
    assert result["type"] == "cannotCalculateChanges"


async def test_a_state_inside_the_maildir_is_refused(make_app: AppFactory, tmp_path: Path) -> None:
    app = make_app(
        config=Config(
            state_dir=tmp_path / "s", watch=False, account_state="{home}/alice-Maildir/.st"
        )
    )
    async with client_for(app) as client:
        response = await client.get("/jmap/session")
    assert response.status_code == 503
    assert "inside their Maildir" in response.json()["detail"]


def test_a_backend_opens_on_its_own_only_the_users_routed_to_it(
    make_app: AppFactory, tmp_path: Path
) -> None:
    """Push subscriptions and queued sends open accounts at start-up; under routing
    only on the backend that serves the user, so a moved user is not held by the
    old backend's owner lock; an account open here for a user routed elsewhere is
    never kept open as busy."""
    candidates = (("127.0.0.2:8080", f"127.0.0.3:{p}") for p in range(8080, 8200))
    backends = next(
        b for b in candidates if len({Routing(b, 8080).hashed(u) for u in PASSWORDS}) == 2
    )
    here = Routing(backends, 8080).hashed("alice")
    assert here is not None
    host, port = here.split(":")
    config = Config(
        state_dir=tmp_path / "s", watch=False, host=host, port=int(port), route_backends=backends
    )
    server = make_app(config=config).state.server
    elsewhere = "bob"
    assert server.serves("alice")
    assert not server.serves(elsewhere)
    alice = server.open_served("alice")
    assert alice is not None
    assert server.open_served(elsewhere) is None
    assert not server.pool.is_open(elsewhere)
    account = server.open_account(elsewhere)  # a request that came here anyway
    server.push.subscribed_users = lambda: {"alice", elsewhere}  # both have Web Push
    assert server.busy(alice)
    assert not server.busy(account)
    unlisted = make_app(
        config=Config(state_dir=tmp_path / "t", watch=False, route_backends=backends)
    )
    assert unlisted.state.server.serves(elsewhere)  # not among the backends: serves all


async def test_push_subscriptions_move_with_the_account_state(
    make_app: AppFactory, tmp_path: Path
) -> None:
    """RFC 8620 §7.2 subscriptions made on one backend are there on the next, signed
    with the shared VAPID key (push.vapid_key_file), once the user's account opens."""
    shared = {"account_state": "{home}/.maildir-jmap", "vapid_key_file": tmp_path / "vapid.pem"}
    sub = {"deviceClientId": "phone", "url": "https://push.example.net/wpush/v2/abc"}

    async def push_call(client: httpx.AsyncClient, args: dict[str, Any]) -> dict[str, Any]:
        name = "PushSubscription/set" if "create" in args else "PushSubscription/get"
        body = {"using": [CORE], "methodCalls": [[name, args, "c"]]}
        ((method, result, _),) = (await client.post("/jmap/api/", json=body)).json()[
            "methodResponses"
        ]
        assert method == name, result
        out: dict[str, Any] = result
        return out

    one = make_app(config=Config(state_dir=tmp_path / "one", watch=False, **shared))
    async with client_for(one) as client:
        await call(client, "Mailbox/get", ids=[])
        made = (await push_call(client, {"create": {"s": sub}}))["created"]["s"]["id"]
        one.state.server.pool.close_all()
    two = make_app(config=Config(state_dir=tmp_path / "two", watch=False, **shared))
    async with client_for(two) as client:
        await call(client, "Mailbox/get", ids=[])  # the account opens here
        listed = (await push_call(client, {"ids": None}))["list"]
    assert [s["id"] for s in listed] == [made]
    assert [s.url for s in two.state.server.push.subscriptions.all()] == [sub["url"]]
    assert one.state.server.push.vapid_public_key == two.state.server.push.vapid_public_key
