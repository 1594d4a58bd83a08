"""The API endpoint over HTTP: request-level errors as problem details (RFC 8620
§3.6.1), never a 500, and the pieces the HTTP layer owns (limits, gzip, locks)."""

from __future__ import annotations

import asyncio
import gzip
import threading
from typing import Any

import httpx
import orjson
import pytest

from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CORE, CoreLimits
from maildir_jmap.core.dispatch import CORE_METHODS, Method, Registry
from tests.conftest import AppFactory, client_for

URN = "urn:ietf:params:jmap:error:"
ECHO = {"using": [CORE], "methodCalls": [["Core/echo", {"hello": True}, "c1"]]}


async def post(client: httpx.AsyncClient, body: Any, **kwargs: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    return await client.post("/jmap/api/", content=content, headers=headers, **kwargs)


def assert_problem(response: httpx.Response, kind: str, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == URN + kind
    assert body["status"] == status
    return body


async def test_core_echo_over_http_rfc8620_4(client: httpx.AsyncClient) -> None:
    response = await post(client, ECHO)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["methodResponses"] == [["Core/echo", {"hello": True}, "c1"]]
    session = (await client.get("/jmap/session")).json()
    assert body["sessionState"] == session["state"]  # §3.4


@pytest.mark.parametrize("body", [b"", b"{not json", b"\x00\x01", b'{"using": NaN}'])
async def test_not_json_rfc8620_3_6_1(client: httpx.AsyncClient, body: bytes) -> None:
    assert_problem(await post(client, body), "notJSON")


@pytest.mark.parametrize(
    "body",
    [
        [],
        "just a string",
        {"using": "urn:ietf:params:jmap:core", "methodCalls": []},
        {"using": [CORE], "methodCalls": "Core/echo"},
        {"using": [CORE], "methodCalls": [["Core/echo", {}, 1]]},
        {"using": [CORE], "methodCalls": [["Core/echo", "args", "c"]]},
        {"using": [CORE], "methodCalls": [[None, {}, "c"]]},
        {"using": [CORE], "methodCalls": [], "createdIds": ["x"]},
    ],
)
async def test_not_request_rfc8620_3_6_1(client: httpx.AsyncClient, body: Any) -> None:
    assert_problem(await post(client, body), "notRequest")


async def test_unknown_capability_rfc8620_3_6_1(client: httpx.AsyncClient) -> None:
    body = {"using": [CORE, "https://example.com/apis/foobar"], "methodCalls": []}
    problem = assert_problem(await post(client, body), "unknownCapability")
    assert "https://example.com/apis/foobar" in problem["detail"]


async def test_ten_thousand_calls_is_limit_rfc8620_3_6_1(client: httpx.AsyncClient) -> None:
    calls = [["Core/echo", {}, str(i)] for i in range(10_000)]
    problem = assert_problem(await post(client, {"using": [CORE], "methodCalls": calls}), "limit")
    assert problem["limit"] == "maxCallsInRequest"


async def test_ten_megabyte_body_is_limit_rfc8620_3_6_1(client: httpx.AsyncClient) -> None:
    padding = "x" * 10_000_000
    body = {"using": [CORE], "methodCalls": [["Core/echo", {"pad": padding}, "c"]]}
    problem = assert_problem(await post(client, body), "limit")
    assert problem["limit"] == "maxSizeRequest"


async def test_oversized_streamed_body_without_length_is_limit(
    make_app: AppFactory, tmp_path: Any
) -> None:
    config = Config(state_dir=tmp_path / "s", watch=False, limits=CoreLimits(maxSizeRequest=1000))

    async def chunks() -> Any:
        for _ in range(100):
            yield b"x" * 100

    async with client_for(make_app(config=config)) as client:
        response = await client.post("/jmap/api/", content=chunks())
    assert assert_problem(response, "limit")["limit"] == "maxSizeRequest"


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "application/jsonx"]
)
async def test_content_type_other_than_json_is_not_json_rfc8620_3_6_1(
    client: httpx.AsyncClient, content_type: str
) -> None:
    """§3.6.1 notJSON: "The content type of the request was not application/json";
    the detail tells a curl user what to add."""
    response = await post(client, ECHO, headers={"Content-Type": content_type})
    problem = assert_problem(response, "notJSON")
    assert "Content-Type: application/json" in problem["detail"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
async def test_json_content_type_with_parameters_is_accepted(
    client: httpx.AsyncClient, content_type: str
) -> None:
    response = await post(client, ECHO, headers={"Content-Type": content_type})
    assert response.status_code == 200


async def test_using_nothing_gives_unknown_method_per_call_rfc8620_3_6_2(
    client: httpx.AsyncClient,
) -> None:
    body = {"using": [], "methodCalls": [["Core/echo", {}, "a"], ["Mailbox/get", {}, "b"]]}
    response = await post(client, body)
    assert response.status_code == 200
    calls = response.json()["methodResponses"]
    assert [(name, args["type"], cid) for name, args, cid in calls] == [
        ("error", "unknownMethod", "a"),
        ("error", "unknownMethod", "b"),
    ]


async def test_deeply_nested_request_is_a_clear_error_not_500(client: httpx.AsyncClient) -> None:
    deep = b'{"x":' * 300 + b"{}" + b"}" * 300
    body = b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",%s,"c"]]}' % deep
    problem = assert_problem(await post(client, body), "notRequest")
    assert "deep" in problem["detail"]


@pytest.mark.parametrize("path", ["/jmap/api/", "/jmap/upload/ACCOUNT/"])
async def test_client_gone_mid_body_is_quiet(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """A client that disconnects while sending (a request or an upload) is logged
    at debug, never as an ERROR traceback (Starlette raises ClientDisconnect), and
    a half upload leaves no file behind."""
    app = make_app()
    async with client_for(app) as client:
        session = (await client.get("/jmap/session")).json()
    path = path.replace("ACCOUNT", next(iter(session["accounts"])))
    sent: list[dict[str, Any]] = []
    messages = iter(
        [
            {"type": "http.request", "body": b'{"using": [', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    import base64

    auth = base64.b64encode(b"alice:alice-secret")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"jmap.test"),
            (b"content-type", b"application/json"),
            (b"authorization", b"Basic " + auth),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("jmap.test", 80),
        "state": {},
    }
    async with app.router.lifespan_context(app):
        with caplog.at_level("DEBUG"):
            await app(scope, receive, send)
    assert not [r for r in caplog.records if r.levelno >= 40]
    assert any("went away" in r.getMessage() for r in caplog.records)
    state = app.state.server
    account = state.account(state.users.get("alice"))
    assert [p.name for p in account.blobs.directory.iterdir()] == ["tmp"]
    assert not list(account.blobs._tmp.iterdir())


async def test_method_errors_keep_http_200_rfc8620_3_6_2(client: httpx.AsyncClient) -> None:
    body = {"using": [CORE], "methodCalls": [["Mailbox/get", {"accountId": "x"}, "c"]]}
    response = await post(client, body)
    assert response.status_code == 200
    assert response.json()["methodResponses"][0][1]["type"] == "unknownMethod"


async def test_server_fail_never_leaks_over_http_rfc8620_3_6_2(make_app: AppFactory) -> None:
    def crash(ctx: object, args: object) -> dict[str, object]:
        raise KeyError("/home/alice/Maildir secret path")

    registry = Registry([*CORE_METHODS, Method("X/crash", CORE, crash, account_arg=None)])
    async with client_for(make_app(registry=registry)) as client:
        response = await post(client, {"using": [CORE], "methodCalls": [["X/crash", {}, "c"]]})
    assert response.status_code == 200
    error = response.json()["methodResponses"][0][1]
    assert error["type"] == "serverFail"
    assert "secret" not in response.text
    assert "Traceback" not in response.text


async def test_server_unavailable_while_the_account_is_locked_rfc8620_3_6_2(
    make_app: AppFactory, tmp_path: Any
) -> None:
    def touch(ctx: Any, args: dict[str, Any]) -> dict[str, Any]:
        ctx.account(args["accountId"])
        return {}

    registry = Registry([*CORE_METHODS, Method("X/touch", CORE, touch)])
    config = Config(state_dir=tmp_path / "s", watch=False, lock_timeout=0.2)
    app = make_app(registry=registry, config=config)
    async with client_for(app) as client:
        session = (await client.get("/jmap/session")).json()
        account_id = next(iter(session["accounts"]))
        state = app.state.server
        account = state.account(state.users.get("alice"))
        body = {"using": [CORE], "methodCalls": [["X/touch", {"accountId": account_id}, "c"]]}
        with account.lock:  # a reconcile (say) holds the account
            blocked = await post(client, body)
        free = await post(client, body)
    assert blocked.json()["methodResponses"][0][1]["type"] == "serverUnavailable"
    assert free.json()["methodResponses"][0] == ["X/touch", {}, "c"]


async def test_concurrent_request_limit_rfc8620_3_6_1(make_app: AppFactory, tmp_path: Any) -> None:
    release = threading.Event()

    def slow(ctx: object, args: object) -> dict[str, object]:
        release.wait(5)
        return {}

    registry = Registry([*CORE_METHODS, Method("X/slow", CORE, slow, account_arg=None)])
    config = Config(
        state_dir=tmp_path / "s", watch=False, limits=CoreLimits(maxConcurrentRequests=2)
    )
    body = {"using": [CORE], "methodCalls": [["X/slow", {}, "c"]]}
    app = make_app(registry=registry, config=config)
    async with client_for(app) as client:
        first = [asyncio.create_task(post(client, body)) for _ in range(2)]
        for _ in range(500):  # until both are running (not a fixed sleep: CI may be slow)
            if app.state.server.requests.running("alice") == 2:
                break
            await asyncio.sleep(0.01)
        third = await post(client, body)
        release.set()
        done = await asyncio.gather(*first)
    assert assert_problem(third, "limit", status=429)["limit"] == "maxConcurrentRequests"
    assert [r.status_code for r in done] == [200, 200]


async def test_responses_are_gzipped_when_accepted(client: httpx.AsyncClient) -> None:
    calls = [["Core/echo", {"text": "lorem ipsum " * 50}, str(i)] for i in range(5)]
    raw = await client.post(
        "/jmap/api/",
        content=orjson.dumps({"using": [CORE], "methodCalls": calls}),
        headers={"Accept-Encoding": "gzip"},
    )
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.json()["methodResponses"][4][2] == "4"  # httpx decodes transparently
    plain = await client.post(
        "/jmap/api/",
        content=orjson.dumps({"using": [CORE], "methodCalls": calls}),
        headers={"Accept-Encoding": "identity"},
    )
    assert "content-encoding" not in plain.headers
    assert len(gzip.compress(plain.content)) < len(plain.content)


async def test_unknown_route_is_a_problem_not_html(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_wrong_http_method_on_api(client: httpx.AsyncClient) -> None:
    response = await client.get("/jmap/api/")
    assert response.status_code == 405
