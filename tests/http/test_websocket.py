"""JMAP over WebSocket (RFC 8887) against a real uvicorn on loopback."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CORE, MAIL, WEBSOCKET
from maildir_jmap.http.app import create_app
from maildir_jmap.server.registry import build_registry
from maildir_jmap.users import User, UserDirectory
from tests.conftest import PASSWORDS, LiveServer

AUTH = ("alice", PASSWORDS["alice"])
BASIC = "Basic " + base64.b64encode(b"alice:" + PASSWORDS["alice"].encode()).decode()


@pytest.fixture
def server(tmp_path: Path, password_hashes: dict[str, str], maildir: Path) -> Iterator[LiveServer]:
    users = UserDirectory({"alice": User("alice", maildir, password_hashes["alice"])})
    config = Config(state_dir=tmp_path / "state", watch=False)
    with LiveServer(create_app(config, users, registry=build_registry())) as live:
        yield live


def session(server: LiveServer) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(server.url + "/jmap/session", auth=AUTH).json()
    return result


def open_socket(server: LiveServer) -> ClientConnection:
    url = session(server)["capabilities"][WEBSOCKET]["url"]
    return connect(url, subprotocols=["jmap"], additional_headers={"Authorization": BASIC})  # type: ignore[list-item]


def receive(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=5))
    return message


def test_request_and_response_with_request_id_rfc8887_4_3_3(server: LiveServer) -> None:
    with open_socket(server) as ws:
        assert ws.subprotocol == "jmap"  # §4.2
        ws.send(json.dumps({
            "@type": "Request", "id": "R1", "using": [CORE],
            "methodCalls": [["Core/echo", {"hello": True}, "c1"]],
        }))  # fmt: skip
        response = receive(ws)
    assert response["@type"] == "Response"
    assert response["requestId"] == "R1"
    assert response["methodResponses"] == [["Core/echo", {"hello": True}, "c1"]]
    assert response["sessionState"] == session(server)["state"]


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("not json", "notJSON"),
        ("[1, 2]", "notRequest"),
        ('{"no": "type"}', "notRequest"),
        ('{"@type": "Mystery", "id": "X"}', "notRequest"),
        (
            '{"@type": "Request", "id": "E", "using": ["urn:x"], "methodCalls": []}',
            "unknownCapability",
        ),
        ('{"@type": "Request", "id": "E", "using": "core", "methodCalls": []}', "notRequest"),
        ('{"@type": "WebSocketPushEnable", "dataTypes": "Email"}', "notRequest"),
    ],
)
def test_bad_messages_get_request_errors_rfc8887_4_3_4(
    server: LiveServer, message: str, kind: str
) -> None:
    with open_socket(server) as ws:
        ws.send(message)
        error = receive(ws)
        assert error["@type"] == "RequestError"
        assert error["type"] == "urn:ietf:params:jmap:error:" + kind
        if '"id": "E"' in message:
            assert error["requestId"] == "E"
        # ... and the connection still works afterwards.
        ws.send(
            json.dumps(
                {"@type": "Request", "using": [CORE], "methodCalls": [["Core/echo", {}, "c"]]}
            )
        )
        assert receive(ws)["@type"] == "Response"


def test_binary_frames_are_not_json_rfc8887_4_3_1(server: LiveServer) -> None:
    with open_socket(server) as ws:
        ws.send(b"\x00\x01")
        assert receive(ws)["type"].endswith("notJSON")


def test_handshake_needs_credentials_and_the_subprotocol_rfc8887_4_1(server: LiveServer) -> None:
    url = session(server)["capabilities"][WEBSOCKET]["url"]
    with pytest.raises(InvalidStatus):
        connect(url, subprotocols=["jmap"])  # type: ignore[list-item]
    with pytest.raises(InvalidStatus):
        connect(url, subprotocols=["jmap"], additional_headers={"Authorization": "Basic bm86bm8="})  # type: ignore[list-item]
    with pytest.raises(InvalidStatus):
        connect(url, additional_headers={"Authorization": BASIC})


def test_push_enable_state_change_and_disable_rfc8887_4_3_5(server: LiveServer) -> None:
    info = session(server)
    account = info["primaryAccounts"][MAIL]

    def create(name: str) -> None:
        body = {
            "using": [CORE, MAIL],
            "methodCalls": [
                ["Mailbox/set", {"accountId": account, "create": {"k": {"name": name}}}, "c"]
            ],
        }
        httpx.post(info["apiUrl"], json=body, auth=AUTH)

    with open_socket(server) as ws:
        ws.send(json.dumps({"@type": "WebSocketPushEnable", "dataTypes": ["Mailbox"]}))
        threading.Timer(0.2, create, ["First"]).start()
        change = receive(ws)
        assert change["@type"] == "StateChange"
        assert list(change["changed"][account]) == ["Mailbox"]
        token = change["pushState"]
        ws.send(json.dumps({"@type": "WebSocketPushDisable"}))
        create("Unseen")
        ws.send(json.dumps({"@type": "Request", "id": "after", "using": [CORE], "methodCalls": []}))
        assert receive(ws)["requestId"] == "after"  # no StateChange came first

    # Reconnecting with an old pushState brings what was missed at once (§4.3.5.2).
    with open_socket(server) as ws:
        ws.send(json.dumps({"@type": "WebSocketPushEnable", "dataTypes": None, "pushState": token}))
        missed = receive(ws)
        assert missed["@type"] == "StateChange"
        assert missed["pushState"] != token
        current = missed["pushState"]
    with open_socket(server) as ws:
        ws.send(json.dumps({"@type": "WebSocketPushEnable", "pushState": current}))
        ws.send(json.dumps({"@type": "Request", "id": "q", "using": [CORE], "methodCalls": []}))
        assert receive(ws)["requestId"] == "q"  # nothing missed: no StateChange
