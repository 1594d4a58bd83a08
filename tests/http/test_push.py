"""EventSource (RFC 8620 §7.3) against a real uvicorn on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORDS, AppFactory, LiveServer

AUTH = ("alice", PASSWORDS["alice"])


def read_events(lines: Iterator[str], count: int) -> list[tuple[str, dict[str, Any]]]:
    """The next ``count`` events from the lines of an open text/event-stream.
    (Abandoning httpx's line iterator closes the response, so tests keep one.)"""
    events: list[tuple[str, dict[str, Any]]] = []
    name, data = "", ""
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and name:
            events.append((name, json.loads(data)))
            name, data = "", ""
            if len(events) == count:
                break
    return events


def account_id(server: LiveServer) -> str:
    session = httpx.get(server.url + "/jmap/session", auth=AUTH).json()
    return next(iter(session["accounts"]))


def publish_soon(
    server: LiveServer, account: str, states: dict[str, str], delay: float = 0.3
) -> None:
    def go() -> None:
        time.sleep(delay)
        server.app.state.server.push.hub.publish(account, states)

    threading.Thread(target=go, daemon=True).start()


def test_ping_events_carry_the_interval_rfc8620_7_3(make_app: AppFactory) -> None:
    with LiveServer(make_app()) as server:
        url = server.url + "/jmap/eventsource/?types=*&closeafter=no&ping=1"
        with httpx.stream("GET", url, auth=AUTH, timeout=10) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert "content-encoding" not in response.headers
            events = read_events(response.iter_lines(), 2)
    assert events == [("ping", {"interval": 1}), ("ping", {"interval": 1})]


def test_state_event_and_closeafter_state_rfc8620_7_3(make_app: AppFactory) -> None:
    with LiveServer(make_app()) as server:
        account = account_id(server)
        url = server.url + "/jmap/eventsource/?types=Email,Mailbox&closeafter=state&ping=0"
        with httpx.stream("GET", url, auth=AUTH, timeout=10) as response:
            publish_soon(server, account, {"Thread": "x-1"})  # filtered out by types
            publish_soon(server, account, {"Email": "e-2", "Thread": "t-2"}, delay=0.6)
            events = read_events(response.iter_lines(), 5)  # returns early when the server closes
    assert events == [("state", {"@type": "StateChange", "changed": {account: {"Email": "e-2"}}})]


def test_other_accounts_changes_are_not_pushed(make_app: AppFactory) -> None:
    with LiveServer(make_app()) as server:
        own = account_id(server)
        url = server.url + "/jmap/eventsource/?types=*&closeafter=state&ping=0"
        with httpx.stream("GET", url, auth=AUTH, timeout=10) as response:
            publish_soon(server, "Asomeoneelse", {"Email": "leak"})
            publish_soon(server, own, {"Email": "mine"}, delay=0.6)
            events = read_events(response.iter_lines(), 1)
    assert events[0][1]["changed"] == {own: {"Email": "mine"}}


def test_listener_is_removed_when_the_client_goes(make_app: AppFactory) -> None:
    app = make_app()
    with LiveServer(app) as server:
        url = server.url + "/jmap/eventsource/?types=*&closeafter=no&ping=1"
        with httpx.stream("GET", url, auth=AUTH, timeout=10) as response:
            lines = response.iter_lines()
            read_events(lines, 1)
            assert app.state.server.push.hub.count() == 1
            read_events(lines, 1)
        deadline = time.monotonic() + 5
        while app.state.server.push.hub.count() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.state.server.push.hub.count() == 0


@pytest.mark.parametrize(
    "query",
    [
        "types=*&closeafter=maybe&ping=0",
        "types=*&closeafter=no&ping=-1",
        "types=*&ping=abc",
        "types=a b",
    ],
)
def test_bad_parameters_are_400_rfc8620_7_3(make_app: AppFactory, query: str) -> None:
    with LiveServer(make_app()) as server:
        response = httpx.get(server.url + "/jmap/eventsource/?" + query, auth=AUTH)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


def test_eventsource_requires_auth(make_app: AppFactory) -> None:
    with LiveServer(make_app()) as server:
        response = httpx.get(server.url + "/jmap/eventsource/?types=*&closeafter=no&ping=0")
    assert response.status_code == 401


def test_browser_token_opens_eventsource_without_a_header(make_app: AppFactory) -> None:
    """A browser's EventSource cannot send Authorization: a token from
    POST /jmap/push-token works in the query string or as a cookie."""
    with LiveServer(make_app()) as server:
        issued = httpx.post(server.url + "/jmap/push-token", auth=AUTH)
        assert issued.status_code == 200
        token = issued.json()["token"]
        assert issued.json()["expires"].endswith("Z")
        cookie = issued.cookies.get("jmap_push")
        assert cookie == token
        assert "HttpOnly" in issued.headers["set-cookie"]
        url = server.url + "/jmap/eventsource/?types=*&closeafter=no&ping=1"
        with httpx.stream("GET", url + f"&access_token={token}", timeout=10) as response:
            assert response.status_code == 200
            assert read_events(response.iter_lines(), 1) == [("ping", {"interval": 1})]
        with httpx.stream("GET", url, cookies={"jmap_push": token}, timeout=10) as response:
            assert response.status_code == 200
        # ... but it is no key to anything else.
        api = httpx.post(
            server.url + "/jmap/api/",
            headers={"Authorization": f"Bearer {token}"},
            json={"using": ["urn:ietf:params:jmap:core"], "methodCalls": []},
        )
        assert api.status_code == 401
        assert (
            httpx.get(server.url + "/jmap/session", params={"access_token": token}).status_code
            == 401
        )
        assert httpx.post(server.url + "/jmap/push-token").status_code == 401


@pytest.mark.parametrize("mangle", ["tamper", "expired", "garbage"])
def test_bad_push_tokens_are_refused(make_app: AppFactory, mangle: str) -> None:
    app = make_app()
    with LiveServer(app) as server:
        tokens = app.state.server.push.tokens
        if mangle == "expired":
            token, _ = tokens.issue("alice", [], lifetime=-1)
        elif mangle == "tamper":
            good, _ = tokens.issue("alice", [])
            body, signature = good.split(".")
            forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB")
            token = f"{forged}.{signature}"
        else:
            token = "not-a-token"
        url = server.url + f"/jmap/eventsource/?types=*&closeafter=no&ping=0&access_token={token}"
        assert httpx.get(url, timeout=5).status_code == 401
