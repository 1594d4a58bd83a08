"""Request envelope validation and request-level errors (RFC 8620 §3.3, §3.6.1)."""

from __future__ import annotations

import orjson
import pytest

from maildir_jmap.core.capabilities import CORE, CoreLimits
from maildir_jmap.core.errors import ERROR_URN, RequestError
from maildir_jmap.core.request import parse_request

SUPPORTED = frozenset({CORE})
LIMITS = CoreLimits()


def error_of(body: bytes, limits: CoreLimits = LIMITS) -> RequestError:
    with pytest.raises(RequestError) as info:
        parse_request(body, limits, SUPPORTED)
    return info.value


@pytest.mark.parametrize(
    "body", [b"", b"{", b"not json", b"NaN", b'{"a": "\\ud800"}', b"[1e400]", b"\xff\xfe"]
)
def test_not_json_rfc8620_3_6_1(body: bytes) -> None:
    error = error_of(body)
    assert error.kind == "notJSON"
    assert error.problem()["type"] == ERROR_URN + "notJSON"
    assert error.problem()["status"] == 400


@pytest.mark.parametrize(
    "request_",
    [
        [],
        "string",
        42,
        None,
        {},
        {"using": [CORE]},
        {"methodCalls": []},
        {"using": CORE, "methodCalls": []},
        {"using": [CORE, 5], "methodCalls": []},
        {"using": [CORE], "methodCalls": {}},
        {"using": [CORE], "methodCalls": [["Core/echo", {}]]},
        {"using": [CORE], "methodCalls": [["Core/echo", {}, "c", "extra"]]},
        {"using": [CORE], "methodCalls": [[5, {}, "c"]]},
        {"using": [CORE], "methodCalls": [["Core/echo", [], "c"]]},
        {"using": [CORE], "methodCalls": [["Core/echo", {}, 7]]},
        {"using": [CORE], "methodCalls": ["Core/echo"]},
        {"using": [CORE], "methodCalls": [], "createdIds": []},
        {"using": [CORE], "methodCalls": [], "createdIds": {"k": 5}},
        {"using": [CORE], "methodCalls": [], "createdIds": {"bad key": "x"}},
    ],
)
def test_not_request_rfc8620_3_6_1(request_: object) -> None:
    assert error_of(orjson.dumps(request_)).kind == "notRequest"


def test_unknown_capability_rfc8620_3_6_1() -> None:
    error = error_of(orjson.dumps({"using": [CORE, "urn:x:nope"], "methodCalls": []}))
    assert error.kind == "unknownCapability"
    assert "urn:x:nope" in error.detail


def test_too_many_calls_is_limit_with_its_name_rfc8620_3_6_1() -> None:
    calls = [["Core/echo", {}, str(i)] for i in range(10_000)]
    error = error_of(orjson.dumps({"using": [CORE], "methodCalls": calls}))
    assert error.kind == "limit"
    assert error.problem()["limit"] == "maxCallsInRequest"


def test_too_large_is_limit_max_size_request_rfc8620_3_6_1() -> None:
    limits = CoreLimits(maxSizeRequest=100)
    body = orjson.dumps({"using": [CORE], "methodCalls": [["Core/echo", {"x": "y" * 200}, "c"]]})
    error = error_of(body, limits)
    assert (error.kind, error.limit) == ("limit", "maxSizeRequest")


def test_unknown_request_properties_are_ignored_rfc8620_3_3() -> None:
    body = orjson.dumps({"using": [CORE], "methodCalls": [], "futureExtension": {"x": 1}})
    request = parse_request(body, LIMITS, SUPPORTED)
    assert request.method_calls == []
    assert request.created_ids is None


def test_valid_request_parses() -> None:
    body = orjson.dumps(
        {"using": [CORE], "methodCalls": [["Core/echo", {"a": 1}, "c1"]], "createdIds": {}}
    )
    request = parse_request(body, LIMITS, SUPPORTED)
    assert request.method_calls == [("Core/echo", {"a": 1}, "c1")]
    assert request.created_ids == {}


def test_using_without_core_is_still_a_request_rfc8620_3_3() -> None:
    """§3.6.2: a method whose capability is not in ``using`` is unknownMethod; an
    empty ``using`` is no reason to refuse the Request itself."""
    body = orjson.dumps({"using": [], "methodCalls": [["Core/echo", {}, "c1"]]})
    request = parse_request(body, LIMITS, SUPPORTED)
    assert request.using == frozenset()
    assert request.method_calls == [("Core/echo", {}, "c1")]


def test_deep_nesting_is_not_request_not_a_crash() -> None:
    """A request nested 300 levels deep (deeper than orjson can write back) is
    refused before any call runs; 100 levels are fine."""
    deep = '{"x":' * 300 + "{}" + "}" * 300
    body = f'{{"using": ["{CORE}"], "methodCalls": [["Core/echo", {deep}, "c"]]}}'
    error = error_of(body.encode())
    assert error.kind == "notRequest"
    assert "deep" in error.detail
    fine: object = {}
    for _ in range(100):
        fine = [fine]
    body = orjson.dumps({"using": [CORE], "methodCalls": [["Core/echo", {"a": fine}, "c"]]})
    assert parse_request(body, LIMITS, SUPPORTED).method_calls
