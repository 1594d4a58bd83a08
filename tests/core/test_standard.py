"""The generic standard methods (RFC 8620 §5) over the in-memory Todo type."""

from __future__ import annotations

from typing import Any

import pytest

from maildir_jmap.core.capabilities import CoreLimits
from tests.core import todo
from tests.core.helpers import one, responses


def seeded(*titles: str, **kwargs: Any) -> tuple[todo.TodoStore, Any]:
    store = todo.TodoStore()
    ctx = todo.context(store, **kwargs)
    create = {f"k{i}": {"title": t, "priority": i} for i, t in enumerate(titles)}
    if create:
        responses([["Todo/set", {"accountId": "a1", "create": create}, "0"]], ctx=ctx)
    return store, (lambda: todo.context(store, **kwargs))


# -- /get §5.1 ----------------------------------------------------------------


def test_get_all_and_state_rfc8620_5_1() -> None:
    store, ctx = seeded("a", "b")
    name, args = one(["Todo/get", {"accountId": "a1", "ids": None}, "c"], ctx=ctx())
    assert name == "Todo/get"
    assert args["state"] == store.state()
    assert [r["id"] for r in args["list"]] == ["t1", "t2"]
    assert args["notFound"] == []


def test_get_properties_always_include_id_rfc8620_5_1() -> None:
    _, ctx = seeded("a")
    args = one(["Todo/get", {"accountId": "a1", "properties": ["title"]}, "c"], ctx=ctx())[1]
    assert args["list"] == [{"id": "t1", "title": "a"}]


def test_get_unknown_property_is_invalid_arguments_rfc8620_5_1() -> None:
    _, ctx = seeded("a")
    args = one(["Todo/get", {"accountId": "a1", "properties": ["nope"]}, "c"], ctx=ctx())[1]
    assert args["type"] == "invalidArguments"


def test_get_not_found_and_duplicates_once_rfc8620_5_1() -> None:
    _, ctx = seeded("a")
    ids = ["t1", "t1", "zz", "zz"]
    args = one(["Todo/get", {"accountId": "a1", "ids": ids}, "c"], ctx=ctx())[1]
    assert [r["id"] for r in args["list"]] == ["t1"]
    assert args["notFound"] == ["zz"]


def test_get_empty_ids_rfc8620_5_1() -> None:
    _, ctx = seeded("a")
    args = one(["Todo/get", {"accountId": "a1", "ids": []}, "c"], ctx=ctx())[1]
    assert (args["list"], args["notFound"]) == ([], [])


def test_get_too_many_ids_is_request_too_large_rfc8620_5_1() -> None:
    ctx = todo.context(limits=CoreLimits(maxObjectsInGet=3))
    ids = ["a", "b", "c", "d"]
    assert one(["Todo/get", {"accountId": "a1", "ids": ids}, "c"], ctx=ctx)[1]["type"] == (
        "requestTooLarge"
    )


def test_get_all_over_the_limit_is_request_too_large_rfc8620_5_1() -> None:
    _, ctx = seeded("a", "b", "c", "d", limits=CoreLimits(maxObjectsInGet=3))
    assert one(["Todo/get", {"accountId": "a1"}, "c"], ctx=ctx())[1]["type"] == "requestTooLarge"


@pytest.mark.parametrize(
    "args",
    [
        {"accountId": "a1", "ids": "t1"},
        {"accountId": "a1", "ids": [1]},
        {"accountId": "a1", "ids": ["bad id"]},
        {"accountId": "a1", "properties": "title"},
        {"accountId": "a1", "properties": [1]},
        {"accountId": "a1", "unknownArg": 1},
    ],
)
def test_get_wrong_types_are_invalid_arguments_rfc8620_3_6_2(args: dict[str, Any]) -> None:
    assert one(["Todo/get", args, "c"])[1]["type"] == "invalidArguments"


# -- /changes §5.2 ------------------------------------------------------------


def test_changes_reports_created_updated_destroyed_rfc8620_5_2() -> None:
    store, ctx = seeded("a", "b", "c")
    since = store.state()
    responses(
        [
            [
                "Todo/set",
                {
                    "accountId": "a1",
                    "create": {"n": {"title": "new"}, "gone": {"title": "tmp"}},
                    "update": {"t1": {"done": True}},
                    "destroy": ["t2"],
                },
                "0",
            ],
            ["Todo/set", {"accountId": "a1", "destroy": ["t5"]}, "1"],
        ],
        ctx=ctx(),
    )
    args = one(["Todo/changes", {"accountId": "a1", "sinceState": since}, "c"], ctx=ctx())[1]
    assert args["oldState"] == since
    assert args["newState"] == store.state()
    assert args["hasMoreChanges"] is False
    # t5 was created and destroyed since: left out (§5.2 SHOULD)
    assert (args["created"], args["updated"], args["destroyed"]) == (["t4"], ["t1"], ["t2"])


def test_changes_with_max_changes_pages_through_rfc8620_5_2() -> None:
    store, ctx = seeded()
    since = store.state()
    seeded_ctx = ctx()
    responses(
        [
            [
                "Todo/set",
                {"accountId": "a1", "create": {f"k{i}": {"title": str(i)} for i in range(5)}},
                "0",
            ]
        ],
        ctx=seeded_ctx,
    )
    seen: list[str] = []
    state, more = since, True
    while more:
        args = one(
            ["Todo/changes", {"accountId": "a1", "sinceState": state, "maxChanges": 2}, "c"],
            ctx=ctx(),
        )[1]
        assert len(args["created"]) + len(args["updated"]) + len(args["destroyed"]) <= 2
        seen += args["created"]
        state, more = args["newState"], args["hasMoreChanges"]
    assert seen == ["t1", "t2", "t3", "t4", "t5"]
    assert state == store.state()


@pytest.mark.parametrize("max_changes", [0, -1, 1.5, "2", True])
def test_changes_max_changes_must_be_positive_rfc8620_5_2(max_changes: Any) -> None:
    args = {"accountId": "a1", "sinceState": "e1-0", "maxChanges": max_changes}
    assert one(["Todo/changes", args, "c"])[1]["type"] == "invalidArguments"


@pytest.mark.parametrize("since", ["garbage", "e9-0", "e1-99"])
def test_changes_from_unknown_state_cannot_calculate_rfc8620_5_2(since: str) -> None:
    args = {"accountId": "a1", "sinceState": since}
    assert one(["Todo/changes", args, "c"])[1]["type"] == "cannotCalculateChanges"


def test_changes_missing_since_state_is_invalid_arguments() -> None:
    assert one(["Todo/changes", {"accountId": "a1"}, "c"])[1]["type"] == "invalidArguments"


# -- /set §5.3 -----------------------------------------------------------------


def test_set_response_has_every_key_null_when_empty_rfc8620_5_3() -> None:
    store, ctx = seeded()
    args = one(["Todo/set", {"accountId": "a1"}, "c"], ctx=ctx())[1]
    assert args == {
        "accountId": "a1",
        "oldState": store.state(),
        "newState": store.state(),
        "created": None,
        "updated": None,
        "destroyed": None,
        "notCreated": None,
        "notUpdated": None,
        "notDestroyed": None,
    }


def test_set_create_returns_server_set_properties_rfc8620_5_3() -> None:
    store, ctx = seeded()
    args = one(["Todo/set", {"accountId": "a1", "create": {"k": {"title": "x"}}}, "c"], ctx=ctx())[
        1
    ]
    assert args["created"] == {"k": {"id": "t1", "done": False, "priority": 0}}
    assert args["oldState"] != args["newState"] == store.state()


def test_set_errors_per_record_do_not_stop_the_others_rfc8620_5_3() -> None:
    store, ctx = seeded("a", "b")
    args = one(
        [
            "Todo/set",
            {
                "accountId": "a1",
                "create": {"ok": {"title": "x"}, "bad": {"title": 5}, "no": {"title": "forbidden"}},
                "update": {"t1": {"title": "A"}, "zz": {"title": "?"}, "t2": {"list/0": 1}},
                "destroy": ["t2", "missing"],
            },
            "c",
        ],
        ctx=ctx(),
    )[1]
    assert list(args["created"]) == ["ok"]
    assert args["notCreated"]["bad"] == {
        "type": "invalidProperties",
        "description": None,
        "properties": ["title"],
    }
    assert args["notCreated"]["no"]["type"] == "forbidden"
    assert args["updated"] == {"t1": None}
    assert args["notUpdated"]["zz"]["type"] == "notFound"
    assert args["notUpdated"]["t2"]["type"] == "invalidPatch"
    assert args["destroyed"] == ["t2"]
    assert args["notDestroyed"]["missing"]["type"] == "notFound"
    assert store.records["t1"]["title"] == "A"


def test_set_creation_references_in_update_and_destroy_rfc8620_5_3() -> None:
    _store, ctx = seeded()
    out = responses(
        [
            ["Todo/set", {"accountId": "a1", "create": {"k": {"title": "x"}}}, "0"],
            ["Todo/set", {"accountId": "a1", "update": {"#k": {"done": True}}}, "1"],
            ["Todo/set", {"accountId": "a1", "destroy": ["#k", "#never"]}, "2"],
        ],
        ctx=ctx(),
    )
    assert out[1][1]["updated"] == {"t1": None}
    assert out[2][1]["destroyed"] == ["t1"]
    assert out[2][1]["notDestroyed"]["#never"]["type"] == "notFound"


def test_set_if_in_state_mismatch_changes_nothing_rfc8620_5_3() -> None:
    store, ctx = seeded("a")
    before = dict(store.records)
    args = one(
        ["Todo/set", {"accountId": "a1", "ifInState": "e1-0", "destroy": ["t1"]}, "c"], ctx=ctx()
    )[1]
    assert args["type"] == "stateMismatch"
    assert store.records == before


def test_set_if_in_state_match_applies_rfc8620_5_3() -> None:
    store, ctx = seeded("a")
    args = one(
        ["Todo/set", {"accountId": "a1", "ifInState": store.state(), "destroy": ["t1"]}, "c"],
        ctx=ctx(),
    )[1]
    assert args["destroyed"] == ["t1"]


def test_set_too_many_objects_is_request_too_large_rfc8620_5_3() -> None:
    ctx = todo.context(limits=CoreLimits(maxObjectsInSet=2))
    args = {
        "accountId": "a1",
        "create": {"a": {"title": "1"}, "b": {"title": "2"}},
        "destroy": ["x"],
    }
    assert one(["Todo/set", args, "c"], ctx=ctx)[1]["type"] == "requestTooLarge"


@pytest.mark.parametrize(
    "args",
    [
        {"create": []},
        {"create": {"k": "not an object"}},
        {"create": {"bad key!": {}}},
        {"update": {"t1": 5}},
        {"update": []},
        {"destroy": "t1"},
        {"destroy": [5]},
        {"ifInState": 5},
    ],
)
def test_set_wrong_types_are_invalid_arguments_rfc8620_3_6_2(args: dict[str, Any]) -> None:
    store, ctx = seeded("a")
    before = dict(store.records)
    assert one(["Todo/set", {"accountId": "a1", **args}, "c"], ctx=ctx())[1]["type"] == (
        "invalidArguments"
    )
    assert store.records == before


def test_reused_creation_id_maps_to_the_latest_rfc8620_5_3() -> None:
    _, ctx = seeded()
    out = responses(
        [
            ["Todo/set", {"accountId": "a1", "create": {"k": {"title": "1"}}}, "0"],
            ["Todo/set", {"accountId": "a1", "create": {"k": {"title": "2"}}}, "1"],
            ["Todo/set", {"accountId": "a1", "destroy": ["#k"]}, "2"],
        ],
        ctx=ctx(),
    )
    assert out[2][1]["destroyed"] == ["t2"]


# -- /copy §5.4 ----------------------------------------------------------------


def test_copy_errors_rfc8620_5_4() -> None:
    stores = (todo.TodoStore(), todo.TodoStore())
    base = {"fromAccountId": "a1", "accountId": "a2", "create": {}}
    assert one(["Todo/copy", {**base, "fromAccountId": "zz"}, "c"], ctx=todo.context(*stores))[1][
        "type"
    ] == ("fromAccountNotFound")
    assert one(["Todo/copy", {**base, "accountId": "a1"}, "c"], ctx=todo.context(*stores))[1][
        "type"
    ] == ("invalidArguments")
    bad = {**base, "create": {"k": {"title": "no id"}}}
    assert one(["Todo/copy", bad, "c"], ctx=todo.context(*stores))[1]["type"] == "invalidArguments"
    state = {**base, "ifFromInState": "e1-77"}
    assert one(["Todo/copy", state, "c"], ctx=todo.context(*stores))[1]["type"] == "stateMismatch"


def test_copy_not_found_is_a_set_error_rfc8620_5_4() -> None:
    ctx = todo.context(todo.TodoStore(), todo.TodoStore())
    args = {"fromAccountId": "a1", "accountId": "a2", "create": {"k": {"id": "t9"}}}
    result = one(["Todo/copy", args, "c"], ctx=ctx)[1]
    assert result["created"] is None
    assert result["notCreated"]["k"]["type"] == "notFound"


# -- /query §5.5 ----------------------------------------------------------------


def test_query_sort_filter_total_rfc8620_5_5() -> None:
    _, ctx = seeded("banana", "Apple", "cherry", "apple pie")
    args = one(
        [
            "Todo/query",
            {
                "accountId": "a1",
                "filter": {"operator": "NOT", "conditions": [{"title": "cherry"}]},
                "sort": [{"property": "title"}],
                "calculateTotal": True,
            },
            "c",
        ],
        ctx=ctx(),
    )[1]
    assert args["ids"] == ["t2", "t4", "t1"]  # case-insensitive by default
    assert args["total"] == 3
    assert args["position"] == 0
    assert args["canCalculateChanges"] is True
    assert args["limit"] == 100  # §5.5: a server maximum replacing a null limit is returned


def test_query_total_only_when_asked_rfc8620_5_5() -> None:
    _, ctx = seeded("a")
    assert "total" not in one(["Todo/query", {"accountId": "a1"}, "c"], ctx=ctx())[1]


def test_query_position_negative_and_past_the_end_rfc8620_5_5() -> None:
    _, ctx = seeded("a", "b", "c", "d")
    q = {"accountId": "a1", "sort": [{"property": "priority"}]}
    assert one(["Todo/query", {**q, "position": -2}, "c"], ctx=ctx())[1]["ids"] == ["t3", "t4"]
    assert one(["Todo/query", {**q, "position": -10, "limit": 1}, "c"], ctx=ctx())[1]["ids"] == [
        "t1"
    ]
    past = one(["Todo/query", {**q, "position": 10}, "c"], ctx=ctx())[1]
    assert past["ids"] == []


def test_query_anchor_and_offset_rfc8620_5_5() -> None:
    _, ctx = seeded("a", "b", "c", "d")
    q = {"accountId": "a1", "sort": [{"property": "priority"}], "position": 3}
    args = one(
        ["Todo/query", {**q, "anchor": "t3", "anchorOffset": -1, "limit": 2}, "c"], ctx=ctx()
    )[1]
    assert (args["position"], args["ids"]) == (1, ["t2", "t3"])
    clamp = one(["Todo/query", {**q, "anchor": "t1", "anchorOffset": -5}, "c"], ctx=ctx())[1]
    assert clamp["position"] == 0


def test_query_anchor_not_found_rfc8620_5_5() -> None:
    _, ctx = seeded("a")
    args = one(["Todo/query", {"accountId": "a1", "anchor": "t9"}, "c"], ctx=ctx())[1]
    assert args["type"] == "anchorNotFound"


def test_query_limit_clamped_by_server_is_returned_rfc8620_5_5() -> None:
    _, ctx = seeded(*[str(i) for i in range(120)])
    args = one(["Todo/query", {"accountId": "a1", "limit": 500}, "c"], ctx=ctx())[1]
    assert (len(args["ids"]), args["limit"]) == (100, 100)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"sort": [{"property": "nope"}]}, "unsupportedSort"),
        ({"sort": [{"property": "title", "collation": "i;klingon"}]}, "unsupportedSort"),
        ({"filter": {"colour": "red"}}, "unsupportedFilter"),
        ({"filter": {"operator": "AND", "conditions": [{"colour": "red"}]}}, "unsupportedFilter"),
        ({"filter": {"operator": "XOR", "conditions": []}}, "invalidArguments"),
        ({"filter": {"operator": "AND"}}, "invalidArguments"),
        ({"filter": {"operator": "AND", "conditions": [], "title": "x"}}, "invalidArguments"),
        ({"filter": {"done": "yes"}}, "invalidArguments"),
        ({"filter": []}, "invalidArguments"),
        ({"sort": {"property": "title"}}, "invalidArguments"),
        ({"sort": [{"property": "title", "isAscending": "no"}]}, "invalidArguments"),
        ({"limit": -1}, "invalidArguments"),
        ({"position": 1.5}, "invalidArguments"),
        ({"anchor": 5}, "invalidArguments"),
        ({"calculateTotal": "yes"}, "invalidArguments"),
    ],
)
def test_query_bad_arguments_rfc8620_5_5(args: dict[str, Any], error: str) -> None:
    assert one(["Todo/query", {"accountId": "a1", **args}, "c"])[1]["type"] == error


def test_query_deeply_nested_filter_is_refused_not_recursed() -> None:
    deep: dict[str, Any] = {"title": "x"}
    for _ in range(60):
        deep = {"operator": "AND", "conditions": [deep]}
    assert one(["Todo/query", {"accountId": "a1", "filter": deep}, "c"])[1]["type"] == (
        "unsupportedFilter"
    )


# -- /queryChanges §5.6 ---------------------------------------------------------


def _replay(
    old: list[str], removed: list[str], added: list[dict[str, Any]], total: int
) -> list[str]:
    ids = [i for i in old if i not in removed]
    for item in added:
        ids.insert(item["index"], item["id"])
    return ids[:total]


def test_query_changes_reproduce_the_new_results_rfc8620_5_6() -> None:
    _store, ctx = seeded("d", "b", "a", "c")
    q = {"accountId": "a1", "sort": [{"property": "title"}], "filter": {"done": False}}
    before = one(["Todo/query", q, "c"], ctx=ctx())[1]
    responses(
        [
            [
                "Todo/set",
                {
                    "accountId": "a1",
                    "create": {"n": {"title": "bb"}},
                    "update": {"t1": {"title": "aa"}, "t2": {"done": True}},
                    "destroy": ["t3"],
                },
                "0",
            ]
        ],
        ctx=ctx(),
    )
    after = one(["Todo/query", q, "c"], ctx=ctx())[1]
    delta = one(
        [
            "Todo/queryChanges",
            {**q, "sinceQueryState": before["queryState"], "calculateTotal": True},
            "c",
        ],
        ctx=ctx(),
    )[1]
    assert delta["oldQueryState"] == before["queryState"]
    assert delta["newQueryState"] == after["queryState"]
    assert [a["index"] for a in delta["added"]] == sorted(a["index"] for a in delta["added"])
    assert _replay(before["ids"], delta["removed"], delta["added"], delta["total"]) == after["ids"]


def test_query_changes_too_many_and_up_to_id_rfc8620_5_6() -> None:
    _store, ctx = seeded("a", "b", "c")
    q = {"accountId": "a1", "sort": [{"property": "priority"}]}
    before = one(["Todo/query", q, "c"], ctx=ctx())[1]
    responses(
        [
            [
                "Todo/set",
                {"accountId": "a1", "update": {"t1": {"done": True}, "t3": {"done": True}}},
                "0",
            ]
        ],
        ctx=ctx(),
    )
    since = {**q, "sinceQueryState": before["queryState"]}
    assert one(["Todo/queryChanges", {**since, "maxChanges": 1}, "c"], ctx=ctx())[1]["type"] == (
        "tooManyChanges"
    )
    limited = one(["Todo/queryChanges", {**since, "upToId": "t2"}, "c"], ctx=ctx())[1]
    assert [a["id"] for a in limited["added"]] == ["t1"]  # t3 is past upToId


def test_query_changes_from_unknown_state_rfc8620_5_6() -> None:
    args = {"accountId": "a1", "sinceQueryState": "zz-1"}
    assert one(["Todo/queryChanges", args, "c"])[1]["type"] == "cannotCalculateChanges"


def test_creates_are_ordered_so_references_resolve_rfc8620_5_3() -> None:
    from maildir_jmap.core.standard_set import creation_order

    create = {
        "child": {"parentId": "#par"},
        "email": {"mailboxIds": {"#child": True, "#par": True}},
        "par": {"name": "p"},
        "free": {"name": "f"},
    }
    assert creation_order(create) == ["par", "child", "email", "free"]
    # No references: the client's order exactly.
    assert creation_order({"b": {}, "a": {}}) == ["b", "a"]
    # A real cycle keeps the given order for its members; the type refuses them.
    cycle = {"x": {"parentId": "#y"}, "y": {"parentId": "#x"}, "z": {"parentId": "#q"}}
    assert creation_order(cycle) == ["z", "x", "y"]
