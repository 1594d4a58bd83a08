"""JMAP errors at their three levels (RFC 8620 §3.6, §5.3) and their wire forms.

Errors are raised where they happen and written to the wire in one place each:
``RequestError`` by the HTTP layer as problem+json, ``MethodError`` by the
dispatcher as ``["error", {...}, callId]``, ``SetError`` by the /set machinery in
``notCreated``/``notUpdated``/``notDestroyed``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from maildir_jmap.core.types import JSONObject

T = TypeVar("T")

ERROR_URN = "urn:ietf:params:jmap:error:"


class RequestError(Exception):
    """A request-level error (§3.6.1), sent as an RFC 7807 problem details object."""

    def __init__(
        self, kind: str, detail: str, *, status: int = 400, limit: str | None = None
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status
        self.limit = limit

    def problem(self) -> JSONObject:
        body: JSONObject = {
            "type": ERROR_URN + self.kind,
            "status": self.status,
            "detail": self.detail,
        }
        if self.limit is not None:
            body["limit"] = self.limit  # §3.6.1: MUST be present for the limit type
        return body


class MethodError(Exception):
    """A method-level error (§3.6.2); ``extra`` holds type-specific properties."""

    def __init__(self, kind: str, description: str | None = None, **extra: Any) -> None:
        super().__init__(description or kind)
        self.kind = kind
        self.description = description
        self.extra = extra

    def arguments(self) -> JSONObject:
        body: JSONObject = {"type": self.kind}
        if self.description:
            body["description"] = self.description
        body.update(self.extra)
        return body


class SetError(Exception):
    """A per-record error of a /set, /copy or similar method (§5.3)."""

    def __init__(
        self,
        kind: str,
        description: str | None = None,
        *,
        properties: list[str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(description or kind)
        self.kind = kind
        self.description = description
        self.properties = properties
        self.extra = extra

    def to_json(self) -> JSONObject:
        body: JSONObject = {"type": self.kind, "description": self.description}
        if self.properties is not None:
            body["properties"] = self.properties
        body.update(self.extra)
        return body


def invalid_properties(*names: str, description: str | None = None) -> SetError:
    return SetError("invalidProperties", description, properties=list(names))


class PropertyErrors:
    """Collects the invalidProperties of one object so that a create lists every bad
    property, not only the first (RFC 8620 §5.3: the server SHOULD list all of
    them). Other SetErrors pass through at once."""

    def __init__(self) -> None:
        self.properties: list[str] = []
        self.descriptions: list[str] = []

    def check(self, validate: Callable[[], T], default: T) -> T:
        """``validate()``, or ``default`` after noting what it found invalid."""
        try:
            return validate()
        except SetError as exc:
            if exc.kind != "invalidProperties":
                raise
            self.add(*(exc.properties or []), description=exc.description)
            return default

    def add(self, *names: str, description: str | None = None) -> None:
        self.properties += [n for n in names if n not in self.properties]
        if description:
            self.descriptions.append(description)

    def raise_any(self) -> None:
        if self.properties:
            raise invalid_properties(
                *self.properties, description="; ".join(self.descriptions) or None
            )
