"""The Request object (RFC 8620 §3.3): decoding, envelope validation and limits.

Bytes in, a validated ``Request`` out, or a ``RequestError``. The HTTP layer has
already refused bodies over ``maxSizeRequest`` while reading; ``parse_request``
checks again so that the core stands on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from maildir_jmap.core.capabilities import CoreLimits, check_using
from maildir_jmap.core.errors import RequestError
from maildir_jmap.core.types import JSONObject, is_id

Invocation = tuple[str, JSONObject, str]


@dataclass(frozen=True)
class Request:
    using: frozenset[str]
    method_calls: list[Invocation]
    created_ids: dict[str, str] | None


def decode_json(body: bytes) -> Any:
    """§3.6.1 notJSON: the body must parse as I-JSON (RFC 7493).

    orjson already refuses NaN/Infinity and lone surrogates, which I-JSON forbids.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError("notJSON", f"The request did not parse as I-JSON: {exc}") from None


MAX_DEPTH = 128
"""How deeply a Request may nest. No JMAP argument needs more (a FilterOperator
tree is bounded at 32 by core/query.py); deeper input is refused before any call
runs, so that no response can become too deep to serialize."""


def nesting_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """The depth of a decoded JSON value, counting stops once past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _not_request(detail: str) -> RequestError:
    return RequestError("notRequest", detail)


def parse_request(body: bytes, limits: CoreLimits, supported: frozenset[str]) -> Request:
    if len(body) > limits.maxSizeRequest:
        raise RequestError(
            "limit",
            "The request is larger than the server is willing to process.",
            limit="maxSizeRequest",
        )
    return request_from_json(decode_json(body), limits, supported)


def request_from_json(data: object, limits: CoreLimits, supported: frozenset[str]) -> Request:
    """Validate an already decoded Request object (the WebSocket transport decodes
    the envelope itself, RFC 8887 §4.3.2)."""
    if not isinstance(data, dict):
        raise _not_request("The request must be a JSON object.")
    if nesting_depth(data) > MAX_DEPTH:
        raise _not_request(f"The request nests more than {MAX_DEPTH} levels deep.")
    # §3.3: properties other than these are ignored ("a server MUST ignore any other
    # properties it does not understand on the JMAP Request object").
    using = data.get("using")
    calls = data.get("methodCalls")
    if not isinstance(using, list) or not all(isinstance(u, str) for u in using):
        raise _not_request("'using' must be an array of strings.")
    if not isinstance(calls, list):
        raise _not_request("'methodCalls' must be an array of Invocations.")
    created_ids = data.get("createdIds")
    if "createdIds" in data and (
        not isinstance(created_ids, dict)
        or not all(is_id(k) and is_id(v) for k, v in created_ids.items())
    ):
        raise _not_request("'createdIds' must be an object mapping Ids to Ids.")
    used = check_using(using, supported)
    if len(calls) > limits.maxCallsInRequest:
        raise RequestError(
            "limit",
            f"The request has {len(calls)} method calls; the limit is {limits.maxCallsInRequest}.",
            limit="maxCallsInRequest",
        )
    invocations: list[Invocation] = []
    for index, call in enumerate(calls):
        if (
            not isinstance(call, list)
            or len(call) != 3
            or not isinstance(call[0], str)
            or not isinstance(call[1], dict)
            or not isinstance(call[2], str)
        ):
            raise _not_request(
                f"methodCalls[{index}] must be [String name, Object arguments, String id]."
            )
        invocations.append((call[0], call[1], call[2]))
    return Request(used, invocations, dict(created_ids) if created_ids is not None else None)
