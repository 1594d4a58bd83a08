"""PushSubscription (RFC 8620 §7.2) end to end: a real uvicorn serving JMAP, a
real uvicorn on loopback playing the push service, which decrypts RFC 8291
payloads with http_ece and checks the VAPID signature (RFC 8292)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import http_ece
import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CORE, MAIL
from maildir_jmap.http.app import create_app
from maildir_jmap.server.push import WEBPUSH_VAPID
from maildir_jmap.tokens import TokenStore
from maildir_jmap.users import UserDirectory
from tests.conftest import PASSWORDS, AppFactory, LiveServer, client_for
from tests.sync.test_ece import UA_AUTH, UA_KEYS, UA_PRIVATE, verify_vapid

AUTH = ("alice", PASSWORDS["alice"])
USING = [CORE, MAIL]


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes

    def message(self) -> dict[str, Any]:
        if self.headers.get("content-encoding") == "aes128gcm":
            plain = http_ece.decrypt(
                self.body, private_key=UA_PRIVATE, auth_secret=UA_AUTH, version="aes128gcm"
            )
            return dict(orjson.loads(plain))
        return dict(orjson.loads(self.body))


@dataclass
class PushService:
    """Records every POST; answers with queued statuses (201 when none queued)."""

    deliveries: list[Delivery] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        with self.arrived:
            status = self.statuses.pop(0) if self.statuses else 201
            self.deliveries.append(Delivery(request.url.path, dict(request.headers), body))
            self.arrived.notify_all()
        return Response(status_code=status)

    def wait(self, count: int, timeout: float = 10.0) -> list[Delivery]:
        with self.arrived:
            ok = self.arrived.wait_for(lambda: len(self.deliveries) >= count, timeout)
            assert ok, f"expected {count} pushes, got {len(self.deliveries)}"
            return list(self.deliveries)

    def quiet(self, count: int, seconds: float = 0.6) -> None:
        """Nothing beyond ``count`` deliveries arrives within ``seconds``."""
        time.sleep(seconds)
        with self.arrived:
            assert len(self.deliveries) == count, [d.message() for d in self.deliveries]


@pytest.fixture
def push_service() -> Iterator[tuple[PushService, str]]:
    service = PushService()
    app = Starlette(routes=[Route("/push/{rest:path}", service.receive, methods=["POST"])])
    with LiveServer(app) as server:
        yield service, server.url + "/push/device-1"


def loopback_config(tmp_path: Path, **extra: Any) -> Config:
    """The loopback allowance switched on: the push service is on 127.0.0.1."""
    return Config(
        state_dir=tmp_path / "state",
        watch=extra.pop("watch", False),
        push_allow_private_targets=True,
        push_allow_http=True,
        **extra,
    )


def call(server: LiveServer, calls: list[Any], auth: Any = AUTH) -> list[Any]:
    response = httpx.post(
        server.url + "/jmap/api/", json={"using": USING, "methodCalls": calls}, auth=auth
    )
    assert response.status_code == 200, response.text
    return list(response.json()["methodResponses"])


def subscribe(server: LiveServer, url: str, auth: Any = AUTH, **props: Any) -> dict[str, Any]:
    obj = {"deviceClientId": "device-1", "url": url, **props}
    ((name, result, _),) = call(
        server, [["PushSubscription/set", {"create": {"s": obj}}, "0"]], auth
    )
    assert name == "PushSubscription/set", result
    return dict(result["created"]["s"])


def verify(server: LiveServer, service: PushService, sub_id: str, auth: Any = AUTH) -> None:
    (first,) = service.wait(1)
    message = first.message()
    assert message["@type"] == "PushVerification"
    assert message["pushSubscriptionId"] == sub_id
    update = {"update": {sub_id: {"verificationCode": message["verificationCode"]}}}
    ((_, result, _),) = call(server, [["PushSubscription/set", update, "0"]], auth)
    assert result["updated"] == {sub_id: None}


def flag_first_email(server: LiveServer, keyword: str = "$flagged") -> str:
    """Set a keyword on some Email; the new Email state."""
    ((_, query, _),) = call(server, [["Email/query", {"accountId": ACCOUNT[0], "limit": 1}, "q"]])
    email_id = query["ids"][0]
    patch = {f"keywords/{keyword}": True}
    ((_, result, _),) = call(
        server, [["Email/set", {"accountId": ACCOUNT[0], "update": {email_id: patch}}, "s"]]
    )
    assert result["updated"] == {email_id: None}
    return str(result["newState"])


ACCOUNT: list[str] = []


def account_id(server: LiveServer) -> str:
    session = httpx.get(server.url + "/jmap/session", auth=AUTH).json()
    ACCOUNT[:] = [next(iter(session["accounts"]))]
    return ACCOUNT[0]


def test_verification_then_encrypted_state_changes_rfc8620_7_2(
    tmp_path: Path, users: UserDirectory, push_service: tuple[PushService, str]
) -> None:
    service, url = push_service
    with LiveServer(create_app(loopback_config(tmp_path), users)) as server:
        account = account_id(server)
        session = httpx.get(server.url + "/jmap/session", auth=AUTH).json()
        server_key = session["capabilities"][WEBPUSH_VAPID]["applicationServerKey"]
        before = time.time()
        created = subscribe(server, url, keys=UA_KEYS, types=None)
        # §7.2: the server sets (and here reports) the expiry, at most 7 days ahead.
        assert set(created) == {"id", "expires", "verificationCode"}
        expires = time.mktime(time.strptime(created["expires"], "%Y-%m-%dT%H:%M:%SZ"))
        assert 0 < expires - time.timezone - before <= 7 * 24 * 3600 + 1

        (verification,) = service.wait(1)
        assert verification.headers["content-encoding"] == "aes128gcm"
        assert int(verification.headers["ttl"]) > 0  # §7.2: the TTL header is a MUST
        claims = verify_vapid(verification.headers["authorization"], server_key)
        assert claims["aud"] == url.split("/push")[0]

        # §7.2: nothing but the verification is sent until the client confirms it.
        flag_first_email(server, "unverified")
        service.quiet(1)

        wrong = {"update": {created["id"]: {"verificationCode": "0" * 32}}}
        ((_, result, _),) = call(server, [["PushSubscription/set", wrong, "0"]])
        assert result["notUpdated"][created["id"]]["type"] == "invalidProperties"
        assert result["notUpdated"][created["id"]]["properties"] == ["verificationCode"]

        verify(server, service, created["id"])
        state = flag_first_email(server)
        deliveries = service.wait(2)
        change = deliveries[1].message()
        assert change["@type"] == "StateChange"
        assert change["changed"][account]["Email"] == state
        assert deliveries[1].headers["topic"]  # RFC 8030 §5.4: replaces an undelivered one

        ((_, got, _),) = call(server, [["PushSubscription/get", {"ids": None}, "0"]])
        (listed,) = got["list"]
        assert set(listed) == {"id", "deviceClientId", "verificationCode", "expires", "types"}
        assert listed["verificationCode"] is not None  # §7.2.1: never url or keys
        assert set(got) == {"list", "notFound"}
        ((name, error, _),) = call(
            server, [["PushSubscription/get", {"ids": None, "properties": ["url"]}, "0"]]
        )
        assert (name, error["type"]) == ("error", "forbidden")


def test_types_filter_and_plain_json_without_keys_rfc8620_7_2(
    tmp_path: Path, users: UserDirectory, push_service: tuple[PushService, str]
) -> None:
    service, url = push_service
    with LiveServer(create_app(loopback_config(tmp_path), users)) as server:
        account = account_id(server)
        created = subscribe(server, url, types=["Thread"])
        assert created["keys"] is None
        verify(server, service, created["id"])
        assert service.deliveries[0].headers["content-type"] == "application/json"
        flag_first_email(server)  # Email and Mailbox change, no Thread does
        service.quiet(1)
        ((_, boxes, _),) = call(server, [["Mailbox/get", {"accountId": account}, "0"]])
        email = {"mailboxIds": {boxes["list"][0]["id"]: True}, "subject": "new thread"}
        create = {"accountId": account, "create": {"e": email}}
        ((_, _, _), (_, threads, _)) = call(
            server,
            [["Email/set", create, "0"], ["Thread/get", {"accountId": account, "ids": []}, "1"]],
        )
        deliveries = service.wait(2)
        # §7.2 types: only the wanted type, with the state Thread/get now reports.
        assert deliveries[1].message()["changed"] == {account: {"Thread": threads["state"]}}


def test_failures_are_retried_and_coalesced_rfc8620_7_2(
    tmp_path: Path, users: UserDirectory, push_service: tuple[PushService, str]
) -> None:
    service, url = push_service
    with LiveServer(create_app(loopback_config(tmp_path), users)) as server:
        account_id(server)
        created = subscribe(server, url)
        verify(server, service, created["id"])
        service.statuses[:] = [503, 429]
        flag_first_email(server, "first")
        service.wait(2)  # the 503
        last = flag_first_email(server, "second")  # arrives while backing off
        deliveries = service.wait(4, timeout=15)
        service.quiet(4, 1.5)
        # The retry after 503 is refused with 429; the next try carries the newest
        # state of everything pending, once.
        assert deliveries[3].message()["changed"][ACCOUNT[0]]["Email"] == last


def test_gone_at_the_push_service_destroys_it_rfc8030_7_3(
    tmp_path: Path, users: UserDirectory, push_service: tuple[PushService, str]
) -> None:
    service, url = push_service
    with LiveServer(create_app(loopback_config(tmp_path), users)) as server:
        account_id(server)
        created = subscribe(server, url)
        verify(server, service, created["id"])
        service.statuses[:] = [410]
        flag_first_email(server)
        service.wait(2)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            ((_, got, _),) = call(server, [["PushSubscription/get", {"ids": None}, "0"]])
            if not got["list"]:
                break
            time.sleep(0.05)
        assert got["list"] == []
        flag_first_email(server, "after")
        service.quiet(2)


def drop_message(maildir: Path, name: str) -> None:
    data = b"From: a@example.org\r\nSubject: pushed\r\nMessage-ID: <p@x>\r\n\r\nhi\r\n"
    tmp = maildir / "tmp" / name
    tmp.write_bytes(data)
    os.rename(tmp, maildir / "new" / name)


def test_subscriptions_survive_restart_and_follow_dovecot_deliveries(
    tmp_path: Path, users: UserDirectory, push_service: tuple[PushService, str]
) -> None:
    """After a restart nobody has logged in, yet a message delivered into the
    Maildir reaches the verified subscription (its account is opened at start)."""
    service, url = push_service
    config = loopback_config(tmp_path, watch=True)
    with LiveServer(create_app(config, users)) as server:
        account = account_id(server)
        created = subscribe(server, url, types=["Email", "EmailDelivery"])
        verify(server, service, created["id"])
    with LiveServer(create_app(config, users)):
        alice = users.get("alice")
        assert alice is not None
        drop_message(alice.maildir, "1700000000.M1P1.host")
        deliveries = service.wait(2)
        changed = deliveries[1].message()["changed"][account]
        assert set(changed) == {"Email", "EmailDelivery"}
        assert deliveries[1].headers["urgency"] == "high"


def test_subscriptions_belong_to_their_credential_rfc8620_7_2(
    tmp_path: Path, users: UserDirectory, push_service: tuple[PushService, str]
) -> None:
    _, url = push_service
    tokens = TokenStore(tmp_path / "state" / "tokens.json")
    (tmp_path / "state").mkdir(parents=True, exist_ok=True)
    info, token = tokens.create("alice")
    app = create_app(loopback_config(tmp_path), users, tokens)
    with LiveServer(app) as server:
        account_id(server)
        by_token = subscribe(server, url, auth=_Bearer(token))
        by_password = subscribe(server, url)

        def listed(auth: Any) -> list[str]:
            ((_, got, _),) = call(server, [["PushSubscription/get", {"ids": None}, "0"]], auth)
            return [s["id"] for s in got["list"]]

        assert listed(_Bearer(token)) == [by_token["id"]]
        assert listed(AUTH) == [by_password["id"]]
        # Another credential cannot destroy it either.
        destroy = {"destroy": [by_token["id"]]}
        ((_, result, _),) = call(server, [["PushSubscription/set", destroy, "0"]])
        assert result["notDestroyed"][by_token["id"]]["type"] == "notFound"
        # §7.2: when the credential is revoked, its subscriptions are destroyed.
        tokens.revoke(info.id)
        store = app.state.server.push.subscriptions
        assert store.prune(time.time()) == [by_token["id"]]
        assert listed(AUTH) == [by_password["id"]]


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


async def test_private_targets_are_refused_by_default_rfc8620_8_6(
    make_app: AppFactory, tmp_path: Path
) -> None:
    async with client_for(make_app()) as client:
        create = {
            str(i): {"deviceClientId": "d", "url": url}
            for i, url in enumerate(
                [
                    "http://push.example.net/x",
                    "https://127.0.0.1:9/x",
                    "https://169.254.169.254/latest/meta-data",
                    "https://localhost/x",
                    # Issue 17: the same places, spelled as resolvers also accept.
                    "https://127.1/x",
                    "https://0x7f000001/x",
                    "https://2130706433/x",
                    "https://localhost./x",
                    "https://[::ffff:7f00:1]/x",
                    "https://[::ffff:10.0.0.1]/x",
                    "https://0177.0.0.1/x",
                ]
            )
        }
        body = {"using": USING, "methodCalls": [["PushSubscription/set", {"create": create}, "0"]]}
        response = await client.post("/jmap/api/", json=body)
        result = response.json()["methodResponses"][0][1]
        assert sorted(result["notCreated"], key=int) == [str(i) for i in range(len(create))]
        for error in result["notCreated"].values():
            assert error == {**error, "type": "invalidProperties", "properties": ["url"]}
    assert not (tmp_path / "state" / "push-subscriptions.json").exists()  # nothing stored


@pytest.mark.parametrize(
    ("obj", "prop"),
    [
        ({"url": "https://push.example.net/x"}, "deviceClientId"),
        ({"deviceClientId": "d"}, "url"),
        ({"deviceClientId": "d", "url": 5}, "url"),
        (
            {"deviceClientId": "d", "url": "https://push.example.net/x", "keys": {"p256dh": "x"}},
            "keys",
        ),
        (
            {"deviceClientId": "d", "url": "https://push.example.net/x", "verificationCode": "x"},
            "verificationCode",
        ),
        (
            {"deviceClientId": "d", "url": "https://push.example.net/x", "expires": "yesterday"},
            "expires",
        ),
        (
            {
                "deviceClientId": "d",
                "url": "https://push.example.net/x",
                "expires": "2001-01-01T00:00:00Z",
            },
            "expires",
        ),
        ({"deviceClientId": "d", "url": "https://push.example.net/x", "types": "Email"}, "types"),
        ({"deviceClientId": "d", "url": "https://push.example.net/x", "id": "S1"}, "id"),
        ({"deviceClientId": "d", "url": "https://push.example.net/x", "colour": "red"}, "colour"),
    ],
)
async def test_bad_create_objects_are_invalid_properties_rfc8620_5_3(
    make_app: AppFactory, obj: dict[str, Any], prop: str
) -> None:
    async with client_for(make_app()) as client:
        body = {
            "using": USING,
            "methodCalls": [["PushSubscription/set", {"create": {"c": obj}}, "0"]],
        }
        response = await client.post("/jmap/api/", json=body)
        assert response.status_code == 200
        result = response.json()["methodResponses"][0][1]
        error = result["notCreated"]["c"]
        assert (error["type"], error["properties"]) == ("invalidProperties", [prop])


async def test_updates_of_immutable_properties_and_bad_arguments(make_app: AppFactory) -> None:
    async with client_for(make_app()) as client:

        async def one(name: str, args: dict[str, Any]) -> list[Any]:
            body = {"using": USING, "methodCalls": [[name, args, "0"]]}
            response = await client.post("/jmap/api/", json=body)
            assert response.status_code == 200
            return list(response.json()["methodResponses"][0])

        obj = {"deviceClientId": "d", "url": "https://push.example.net/x"}
        _, result, _ = await one("PushSubscription/set", {"create": {"c": obj}})
        sub_id = result["created"]["c"]["id"]
        _, result, _ = await one(
            "PushSubscription/set", {"update": {sub_id: {"url": "https://evil.example/"}}}
        )
        assert result["notUpdated"][sub_id]["properties"] == ["url"]
        far = "2999-01-01T00:00:00Z"
        _, result, _ = await one("PushSubscription/set", {"update": {sub_id: {"expires": far}}})
        assert result["updated"][sub_id]["expires"] < far  # clamped and reported (§7.2.2)
        name, error, _ = await one("PushSubscription/get", {"accountId": "x", "ids": None})
        assert (name, error["type"]) == ("error", "invalidArguments")
        name, error, _ = await one("PushSubscription/set", {"ifInState": "x"})
        assert (name, error["type"]) == ("error", "invalidArguments")
        _, result, _ = await one("PushSubscription/set", {"destroy": [sub_id, "Snope"]})
        assert result["destroyed"] == [sub_id]
        assert result["notDestroyed"]["Snope"]["type"] == "notFound"


def test_web_push_keeps_working_after_the_user_moves_backend(
    tmp_path: Path, users: UserDirectory, push_service: tuple[PushService, str]
) -> None:
    """Issue 20: subscribed and verified on one backend; the user moves (both
    backends read the same home, the account state lives there, one VAPID key);
    the next backend, once the account opens there, delivers StateChanges to the
    same subscription, signed with the same key."""
    service, url = push_service
    shared = {"account_state": "{home}/.maildir-jmap", "vapid_key_file": tmp_path / "vapid.pem"}
    first = loopback_config(tmp_path / "one", **shared)
    with LiveServer(create_app(first, users)) as one:
        key = httpx.get(one.url + "/jmap/session", auth=AUTH).json()["capabilities"][WEBPUSH_VAPID][
            "applicationServerKey"
        ]
        created = subscribe(one, url, keys=UA_KEYS, types=None)
        verify(one, service, created["id"])
    with LiveServer(create_app(loopback_config(tmp_path / "two", **shared), users)) as two:
        state = flag_first_email(two)  # the client's next request opens the account here
        deliveries = service.wait(2)
        change = deliveries[1].message()
        assert change["@type"] == "StateChange"
        assert change["changed"][account_id(two)]["Email"] == state
        verify_vapid(deliveries[1].headers["authorization"], key)
