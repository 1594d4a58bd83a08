"""Run JMAP requests against the sans-IO core."""

from __future__ import annotations

from typing import Any

import orjson

from maildir_jmap.core.capabilities import CoreLimits
from maildir_jmap.core.dispatch import Context, Registry, process
from maildir_jmap.core.request import parse_request
from tests.core import todo


def run(
    calls: list[list[Any]],
    ctx: Context | None = None,
    registry: Registry | None = None,
    using: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    ctx = ctx or todo.context()
    registry = registry or todo.registry()
    body = orjson.dumps(
        {"using": using or sorted(registry.capabilities()), "methodCalls": calls, **extra}
    )
    request = parse_request(body, ctx.limits or CoreLimits(), registry.capabilities())
    return process(request, ctx, registry)


def responses(calls: list[list[Any]], **kwargs: Any) -> list[list[Any]]:
    return run(calls, **kwargs)["methodResponses"]


def one(call: list[Any], **kwargs: Any) -> tuple[str, dict[str, Any]]:
    """The single response to one call: (name, arguments)."""
    ((name, arguments, _),) = responses([call], **kwargs)
    return name, arguments
