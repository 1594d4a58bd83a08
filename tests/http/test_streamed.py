"""A large Response is written while its later calls run (http/streamed.py), to a
real uvicorn on loopback; the client reads the same JSON as an answer in one piece."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from maildir_jmap.core.capabilities import CORE
from maildir_jmap.http.streamed import FLUSH_BYTES
from tests.conftest import PASSWORDS, AppFactory, LiveServer

AUTH = ("alice", PASSWORDS["alice"])
BIG = "x" * (FLUSH_BYTES // 3)  # three echoes fill a piece


@pytest.fixture
def server(make_app: AppFactory) -> Iterator[LiveServer]:
    with LiveServer(make_app()) as live:
        yield live


def post(server: LiveServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        server.url + "/jmap/api/",
        content=orjson.dumps(body),
        headers={"Content-Type": "application/json", "Accept-Encoding": "identity"},
        auth=AUTH,
        timeout=30,
    )


def test_a_large_answer_streams_in_order_with_created_ids_and_session_state_rfc8620_3_4(
    server: LiveServer,
) -> None:
    calls: list[list[Any]] = [["Core/echo", {"n": n, "big": BIG}, f"c{n}"] for n in range(8)]
    # §3.7: a reference to a call whose answer has already gone out still resolves.
    calls.append(["Core/echo", {"#n": {"resultOf": "c0", "name": "Core/echo", "path": "/n"}}, "r"])
    response = post(server, {"using": [CORE], "methodCalls": calls, "createdIds": {"k": "v"}})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers.get("transfer-encoding") == "chunked"  # it streamed
    assert "content-length" not in response.headers
    body = response.json()
    assert list(body) == ["methodResponses", "createdIds", "sessionState"]
    assert body["methodResponses"] == [
        *(["Core/echo", {"n": n, "big": BIG}, f"c{n}"] for n in range(8)),
        ["Core/echo", {"n": 0}, "r"],
    ]
    assert body["createdIds"] == {"k": "v"}
    session = httpx.get(server.url + "/jmap/session", auth=AUTH).json()
    assert body["sessionState"] == session["state"]


def test_a_small_answer_is_one_piece_with_its_length(server: LiveServer) -> None:
    calls = [["Core/echo", {"n": n}, f"c{n}"] for n in range(3)]
    response = post(server, {"using": [CORE], "methodCalls": calls})
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    body = response.json()
    assert list(body) == ["methodResponses", "sessionState"]  # §3.4: no createdIds unasked
    assert body["methodResponses"] == [["Core/echo", {"n": n}, f"c{n}"] for n in range(3)]


def test_an_answer_just_over_a_piece_ends_whole(server: LiveServer) -> None:
    """One piece handed over and the rest after the calls: nothing lost or doubled."""
    for count in (3, 4, 6):
        calls = [["Core/echo", {"n": n, "big": BIG}, f"c{n}"] for n in range(count)]
        body = post(server, {"using": [CORE], "methodCalls": calls}).json()
        assert [r[1]["n"] for r in body["methodResponses"]] == list(range(count))


def test_a_streamed_answer_compresses_for_a_client_that_accepts_gzip(server: LiveServer) -> None:
    calls = [["Core/echo", {"n": n, "big": BIG}, f"c{n}"] for n in range(6)]
    response = httpx.post(
        server.url + "/jmap/api/",
        content=orjson.dumps({"using": [CORE], "methodCalls": calls}),
        headers={"Content-Type": "application/json", "Accept-Encoding": "gzip"},
        auth=AUTH,
        timeout=30,
    )
    assert response.headers["content-encoding"] == "gzip"
    assert len(response.content) > 6 * len(BIG)  # httpx undid the gzip
    assert [r[1]["n"] for r in response.json()["methodResponses"]] == list(range(6))
