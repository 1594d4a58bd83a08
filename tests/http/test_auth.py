"""Authentication and account isolation."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson
import pytest

from maildir_jmap.core.capabilities import CORE
from maildir_jmap.core.dispatch import CORE_METHODS, Method, Registry
from maildir_jmap.tokens import TokenStore
from tests.conftest import AppFactory, client_for

ECHO = {"using": [CORE], "methodCalls": [["Core/echo", {}, "c"]]}


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    challenges = response.headers.get_list("www-authenticate")
    assert any(c.startswith("Basic ") for c in challenges)
    assert any(c.startswith("Bearer ") for c in challenges)


@pytest.mark.parametrize("path", ["/jmap/session", "/.well-known/jmap"])
async def test_no_credentials_is_401(make_app: AppFactory, path: str) -> None:
    async with client_for(make_app(), user=None) as client:
        assert_unauthorized(await client.get(path))


@pytest.mark.parametrize(
    "header",
    [
        "Basic " + base64.b64encode(b"alice:wrong").decode(),
        "Basic " + base64.b64encode(b"mallory:alice-secret").decode(),
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "Bearer mjt_0000_nope",
        "Bearer ",
        "Digest abc",
        "Basic",
    ],
)
async def test_bad_credentials_are_401(make_app: AppFactory, header: str) -> None:
    async with client_for(make_app(), user=None) as client:
        response = await client.post(
            "/jmap/api/", content=orjson.dumps(ECHO), headers={"Authorization": header}
        )
    assert_unauthorized(response)


async def test_bearer_token_works_until_revoked(make_app: AppFactory, tmp_path: Any) -> None:
    tokens = TokenStore(tmp_path / "tokens.json")
    info, token = tokens.create("alice", "script")
    async with client_for(make_app(tokens=tokens), user=None) as client:
        headers = {"Authorization": f"Bearer {token}"}
        ok = await client.get("/jmap/session", headers=headers)
        assert ok.status_code == 200
        assert ok.json()["username"] == "alice"
        assert TokenStore(tmp_path / "tokens.json").revoke(info.id)  # as `token revoke` would
        assert_unauthorized(await client.get("/jmap/session", headers=headers))


async def test_token_for_an_unknown_user_is_refused(make_app: AppFactory, tmp_path: Any) -> None:
    tokens = TokenStore(tmp_path / "tokens.json")
    _, token = tokens.create("ghost")
    async with client_for(make_app(tokens=tokens), user=None) as client:
        response = await client.get("/jmap/session", headers={"Authorization": f"Bearer {token}"})
    assert_unauthorized(response)


async def test_users_see_only_their_own_account_rfc8620_3_6_2(make_app: AppFactory) -> None:
    def whoami(ctx: Any, args: dict[str, Any]) -> dict[str, Any]:
        return {"name": ctx.account(args["accountId"]).name}

    registry = Registry([*CORE_METHODS, Method("X/whoami", CORE, whoami)])
    app = make_app(registry=registry)
    async with client_for(app, "alice") as alice, client_for(app, "bob") as bob:
        alice_session = (await alice.get("/jmap/session")).json()
        bob_session = (await bob.get("/jmap/session")).json()
        (alice_id,) = alice_session["accounts"]
        (bob_id,) = bob_session["accounts"]
        assert alice_id != bob_id

        def call(account_id: str) -> bytes:
            return orjson.dumps(
                {"using": [CORE], "methodCalls": [["X/whoami", {"accountId": account_id}, "c"]]}
            )

        own = (await alice.post("/jmap/api/", content=call(alice_id))).json()
        other = (await alice.post("/jmap/api/", content=call(bob_id))).json()
    assert own["methodResponses"][0][1] == {"name": "alice"}
    assert other["methodResponses"][0][1]["type"] == "accountNotFound"


async def test_nobody_can_lock_a_user_out(make_app: AppFactory, tmp_path: Any) -> None:
    """Issue 17: five wrong passwords from anyone used to lock alice out for 15
    minutes. Now the guesser's address is held longer and longer, then refused
    (429); alice, from her own address, gets in at once. Addresses come from
    X-Forwarded-For through a trusted proxy, as behind nginx."""
    import time

    from maildir_jmap.config import Config

    config = Config(
        state_dir=tmp_path / "state",
        watch=False,
        trusted_proxies=("127.0.0.1",),
        max_failures_per_address=6,
    )
    app = make_app(config=config)
    app.state.server.login.throttle.unit = 0.01  # Dovecot's 2, 4, 8, 15 s, faster
    attacker, alice = {"X-Forwarded-For": "203.0.113.5"}, {"X-Forwarded-For": "198.51.100.7"}
    async with client_for(app, user=None) as client:
        codes = []
        for n in range(9):
            response = await client.get(
                "/jmap/session", auth=("alice", f"guess-{n}"), headers=attacker
            )
            codes.append(response.status_code)
        assert codes == [401] * 6 + [429] * 3
        refused = await client.get(
            "/jmap/session", auth=("alice", "alice-secret"), headers=attacker
        )
        assert refused.status_code == 429  # that address keeps failing: refused
        assert int(refused.headers["retry-after"]) > 60
        started = time.monotonic()
        mine = await client.get("/jmap/session", auth=("alice", "alice-secret"), headers=alice)
        assert mine.status_code == 200
        assert time.monotonic() - started < 1  # never held for the guesser's failures
        # An address with a few failures is held, then the right password works.
        other = {"X-Forwarded-For": "192.0.2.44"}
        for n in range(3):
            await client.get("/jmap/session", auth=("alice", f"typo-{n}"), headers=other)
        late = await client.get("/jmap/session", auth=("alice", "alice-secret"), headers=other)
        assert late.status_code == 200
