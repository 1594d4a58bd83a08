"""The per-call loop and method-level errors (RFC 8620 §3.4, §3.6.2, §3.7)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from maildir_jmap.core.capabilities import CORE
from maildir_jmap.core.dispatch import CORE_METHODS, Method, Registry
from maildir_jmap.core.errors import MethodError
from tests.core import todo
from tests.core.helpers import one, responses, run


def test_core_echo_returns_its_arguments_rfc8620_4() -> None:
    args = {"hello": True, "high": 5, "nested": {"a": [1, None, "x"]}}
    assert one(["Core/echo", args, "b3ff"]) == ("Core/echo", args)


def test_unknown_method_rfc8620_3_6_2() -> None:
    name, args = one(["Foo/bar", {}, "c1"])
    assert name == "error"
    assert args["type"] == "unknownMethod"


def test_method_of_capability_not_in_using_is_unknown_rfc8620_3_3() -> None:
    name, args = one(["Todo/get", {"accountId": "a1"}, "c1"], using=[CORE])
    assert (name, args["type"]) == ("error", "unknownMethod")


def test_calls_run_in_order_and_an_error_does_not_stop_the_next_rfc8620_3_6_2() -> None:
    out = responses(
        [
            ["Core/echo", {"n": 1}, "a"],
            ["Nope/nope", {}, "b"],
            ["Core/echo", {"n": 3}, "c"],
        ]
    )
    assert [(r[0], r[2]) for r in out] == [("Core/echo", "a"), ("error", "b"), ("Core/echo", "c")]


def test_account_not_found_rfc8620_3_6_2() -> None:
    assert one(["Todo/get", {"accountId": "nobody"}, "c"])[1]["type"] == "accountNotFound"


def test_account_id_of_wrong_type_is_invalid_arguments_rfc8620_3_6_2() -> None:
    for bad in (None, 5, "", "has space", ["a1"]):
        name, args = one(["Todo/get", {"accountId": bad}, "c"])
        assert (name, args["type"]) == ("error", "invalidArguments"), bad


def test_account_not_supported_by_method_rfc8620_3_6_2() -> None:
    ctx = todo.context()
    ctx.accounts = {
        "a1": ctx.accounts["a1"].__class__("a1", "bare", {}, True, False, todo.TodoStore())
    }
    assert one(["Todo/get", {"accountId": "a1"}, "c"], ctx=ctx)[1]["type"] == (
        "accountNotSupportedByMethod"
    )


def test_account_read_only_refuses_writes_but_not_reads_rfc8620_3_6_2() -> None:
    ctx = todo.context(read_only=True)
    out = responses(
        [
            ["Todo/set", {"accountId": "a1", "create": {"k": {"title": "x"}}}, "w"],
            ["Todo/get", {"accountId": "a1"}, "r"],
        ],
        ctx=ctx,
    )
    assert out[0][1]["type"] == "accountReadOnly"
    assert out[1][0] == "Todo/get"
    assert out[1][1]["list"] == []


def _registry_with(method: Method) -> Registry:
    return Registry([*CORE_METHODS, method])


def test_forbidden_raised_by_a_handler_is_reported_rfc8620_3_6_2() -> None:
    def deny(ctx: object, args: object) -> dict[str, object]:
        raise MethodError("forbidden", "not for you")

    reg = _registry_with(Method("X/deny", CORE, deny, account_arg=None))
    assert one(["X/deny", {}, "c"], registry=reg)[1] == {
        "type": "forbidden",
        "description": "not for you",
    }


def test_server_fail_hides_the_traceback_rfc8620_3_6_2(caplog: pytest.LogCaptureFixture) -> None:
    def crash(ctx: object, args: object) -> dict[str, object]:
        raise RuntimeError("secret internal detail /etc/shadow")

    reg = _registry_with(Method("X/crash", CORE, crash, account_arg=None))
    with caplog.at_level(logging.ERROR):
        out = responses([["X/crash", {}, "c"], ["Core/echo", {"ok": 1}, "d"]], registry=reg)
    assert out[0][1]["type"] == "serverFail"
    assert "secret" not in str(out)
    assert "Traceback" not in str(out)
    assert "secret internal detail" in caplog.text  # it is logged for the admin
    assert out[1] == ["Core/echo", {"ok": 1}, "d"]


def test_server_unavailable_when_the_account_cannot_be_entered_rfc8620_3_6_2() -> None:
    ctx = todo.context()

    def busy(access: object) -> None:
        raise MethodError("serverUnavailable")

    ctx.enter_account = busy
    assert one(["Todo/get", {"accountId": "a1"}, "c"], ctx=ctx)[1]["type"] == "serverUnavailable"


def test_account_is_entered_once_per_request() -> None:
    ctx = todo.context()
    entered: list[str] = []
    ctx.enter_account = lambda access: entered.append(access.account_id)
    responses(
        [["Todo/get", {"accountId": "a1"}, "1"], ["Todo/get", {"accountId": "a1"}, "2"]], ctx=ctx
    )
    assert entered == ["a1"]


def test_same_argument_plain_and_referenced_is_invalid_arguments_rfc8620_3_7() -> None:
    ref = {"resultOf": "a", "name": "Core/echo", "path": "/x"}
    out = responses([["Core/echo", {"x": 1}, "a"], ["Core/echo", {"x": 2, "#x": ref}, "b"]])
    assert out[1][1]["type"] == "invalidArguments"


def test_result_reference_feeds_the_next_call_rfc8620_3_7() -> None:
    out = responses(
        [
            [
                "Todo/set",
                {"accountId": "a1", "create": {"k1": {"title": "a"}, "k2": {"title": "b"}}},
                "0",
            ],
            ["Todo/query", {"accountId": "a1"}, "1"],
            [
                "Todo/get",
                {
                    "accountId": "a1",
                    "#ids": {"resultOf": "1", "name": "Todo/query", "path": "/ids"},
                    "properties": ["title"],
                },
                "2",
            ],
            [
                "Core/echo",
                {"#titles": {"resultOf": "2", "name": "Todo/get", "path": "/list/*/title"}},
                "3",
            ],
        ]
    )
    assert out[3][1] == {"titles": ["a", "b"]}


@pytest.mark.parametrize(
    "reference",
    [
        {"resultOf": "missing", "name": "Core/echo", "path": "/x"},
        {"resultOf": "a", "name": "Other/name", "path": "/x"},
        {"resultOf": "a", "name": "Core/echo", "path": "/nope"},
        {"resultOf": "a", "name": "Core/echo", "path": "x"},
        {"resultOf": "a", "name": "Core/echo", "path": "/x/~2"},
        {"resultOf": "a", "name": "Core/echo"},
        {"resultOf": "a", "name": "Core/echo", "path": 5},
        "not an object",
    ],
)
def test_unresolvable_reference_is_invalid_result_reference_rfc8620_3_7(reference: object) -> None:
    out = responses([["Core/echo", {"x": 1}, "a"], ["Core/echo", {"#y": reference}, "b"]])
    assert out[1][1]["type"] == "invalidResultReference"


def test_reference_to_an_error_response_fails_rfc8620_3_7() -> None:
    out = responses(
        [
            ["Nope/x", {}, "a"],
            ["Core/echo", {"#y": {"resultOf": "a", "name": "Nope/x", "path": ""}}, "b"],
        ]
    )
    assert out[1][1]["type"] == "invalidResultReference"


def test_created_ids_round_trip_rfc8620_3_3_and_3_4() -> None:
    result = run(
        [["Todo/set", {"accountId": "a1", "create": {"new": {"title": "x"}}}, "0"]],
        createdIds={"earlier": "t99"},
    )
    assert result["createdIds"] == {"earlier": "t99", "new": "t1"}


def test_created_ids_absent_from_response_when_not_in_request_rfc8620_3_4() -> None:
    result = run([["Todo/set", {"accountId": "a1", "create": {"new": {"title": "x"}}}, "0"]])
    assert "createdIds" not in result


def test_creation_id_from_request_created_ids_is_usable_rfc8620_5_3() -> None:
    store = todo.TodoStore()
    ctx = todo.context(store)
    run([["Todo/set", {"accountId": "a1", "create": {"k": {"title": "x"}}}, "0"]], ctx=ctx)
    ctx2 = todo.context(store)
    out = run(
        [["Todo/set", {"accountId": "a1", "update": {"#k": {"done": True}}}, "1"]],
        ctx=ctx2,
        createdIds={"k": "t1"},
    )["methodResponses"]
    assert out[0][1]["updated"] == {"t1": None}


def test_implicit_calls_run_after_their_parent_with_its_call_id_rfc8620_5_4() -> None:
    src, dst = todo.TodoStore(), todo.TodoStore(epoch="e2")
    ctx = todo.context(src, dst)
    run([["Todo/set", {"accountId": "a1", "create": {"k": {"title": "x"}}}, "0"]], ctx=ctx)
    out = responses(
        [
            [
                "Todo/copy",
                {
                    "fromAccountId": "a1",
                    "accountId": "a2",
                    "create": {"c": {"id": "t1"}},
                    "onSuccessDestroyOriginal": True,
                },
                "cp",
            ],
            ["Core/echo", {}, "next"],
        ],
        ctx=todo.context(src, dst),
    )
    assert [(r[0], r[2]) for r in out] == [
        ("Todo/copy", "cp"),
        ("Todo/set", "cp"),
        ("Core/echo", "next"),
    ]
    assert out[1][1]["destroyed"] == ["t1"]
    assert src.records == {}
    assert list(dst.records) == ["t1"]


def test_emitted_results_are_whole_and_references_to_them_resolve_rfc8620_3_7() -> None:
    """With ``emit`` (the HTTP transport), every Invocation is told whole; one no
    later call names in a ResultReference is let go once told, one that is named
    still resolves, and a resultOf of the wrong type is an error, not a crash."""
    ctx = todo.context()
    told: list[tuple[str, Any, str]] = []
    ctx.emit = lambda invocation: told.append((invocation[0], dict(invocation[1]), invocation[2]))
    out = run(
        [
            ["Core/echo", {"big": list(range(100))}, "a"],
            ["Core/echo", {"kept": [1, 2, 3]}, "b"],
            ["Core/echo", {"#got": {"resultOf": "b", "name": "Core/echo", "path": "/kept"}}, "c"],
            ["Core/echo", {"#bad": {"resultOf": ["b"], "name": "Core/echo", "path": "/"}}, "d"],
            ["Core/echo", {"#gone": {"resultOf": "zz", "name": "Core/echo", "path": "/"}}, "e"],
        ],
        ctx=ctx,
    )
    assert "methodResponses" not in out  # the transport wrote them as they were told
    assert [t[2] for t in told] == ["a", "b", "c", "d", "e"]
    assert told[0][1] == {"big": list(range(100))}
    assert told[2][1] == {"got": [1, 2, 3]}
    assert (told[3][0], told[3][1]["type"]) == ("error", "invalidResultReference")
    assert (told[4][0], told[4][1]["type"]) == ("error", "invalidResultReference")
    assert ctx.responses[0] == ("Core/echo", {}, "a")  # let go once told
    assert ctx.responses[1][1] == {"kept": [1, 2, 3]}  # named by c: kept
