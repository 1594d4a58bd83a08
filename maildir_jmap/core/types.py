"""JMAP data types (RFC 8620 §1.2-1.4) and JSON aliases.

Validation helpers return the value when it has the right type and raise
``ArgumentError`` (a plain ``ValueError``) when it does not; the dispatcher turns
that into ``invalidArguments``. Nothing here performs I/O.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias, TypeGuard

import orjson

JSON: TypeAlias = Any
JSONObject: TypeAlias = dict[str, Any]
Serialized: TypeAlias = orjson.Fragment
"""A value already written as JSON text, which orjson writes out as is. A handler
may answer with one only when ``Context.serialized`` says the transport writes
the response with orjson (mail/email_fragment.py); result references read into
it (references.py ``evaluate``)."""


def parsed(value: Any) -> Any:
    """``value``, with a Serialized one read back into plain JSON values."""
    return orjson.loads(orjson.dumps(value)) if isinstance(value, orjson.Fragment) else value


MAX_SAFE_INT = 2**53 - 1  # §1.3: Int is -2^53+1 <= value <= 2^53-1
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")  # §1.2: URL-safe base64 alphabet, 1-255 octets
_IDS_RE = re.compile(r"[A-Za-z0-9_-]{1,255}(?:\n[A-Za-z0-9_-]{1,255})*")
"""Ids one to a line (an Id holds no line break; arg_id_list checks no item did)."""
_UTCDATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_UTCDATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


class ArgumentError(ValueError):
    """A method argument has the wrong type or value (-> invalidArguments)."""


def is_id(value: object) -> TypeGuard[str]:
    """RFC 8620 §1.2: 1-255 characters of ``A-Za-z0-9_-``."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def is_int(value: object) -> bool:
    """RFC 8620 §1.3: a JSON integer (not a boolean, not a float) in the safe range."""
    return type(value) is int and -MAX_SAFE_INT <= value <= MAX_SAFE_INT


def is_unsigned_int(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_SAFE_INT


def parse_utc_date(value: object) -> datetime:
    """RFC 8620 §1.4 UTCDate: RFC 3339 ``date-time`` with ``Z`` and uppercase letters."""
    if not isinstance(value, str) or not _UTCDATE_RE.fullmatch(value):
        raise ArgumentError(f"not a UTCDate: {value!r}")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError as exc:
        raise ArgumentError(f"not a UTCDate: {value!r}") from exc


def parse_date(value: object) -> datetime:
    """RFC 8620 §1.4 Date: RFC 3339 ``date-time`` with any offset."""
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise ArgumentError(f"not a Date: {value!r}")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ArgumentError(f"not a Date: {value!r}") from exc


def format_utc_date(moment: datetime) -> str:
    """Render a UTCDate; sub-second precision is dropped (§1.4 allows either)."""
    return moment.astimezone(UTC).strftime(_UTCDATE_FORMAT)


_DAYS: dict[int, str] = {}  # day number -> "YYYY-MM-DDT", as days come up
_MAX_DAYS = 100_000  # a mailbox's dates span a few thousand days
_MINUTES = [f"{h:02}:{m:02}:" for h in range(24) for m in range(60)]
_SECONDS = [f"{s:02}Z" for s in range(60)]


def format_epoch(seconds: float) -> str:
    """``format_utc_date`` of a POSIX time (seconds floored, as ``time.gmtime``
    does). Every Email of a list view or initial sync has its receivedAt made
    here: the day's part is made once, the rest read from tables, 0.7 us where
    strftime of gmtime took 2 (issue 18)."""
    day, rest = divmod(math.floor(seconds), 86400)
    date = _DAYS.get(day)
    if date is None:
        if len(_DAYS) >= _MAX_DAYS:
            _DAYS.clear()
        date = _DAYS[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * 86400))
    minute, second = divmod(rest, 60)
    return date + _MINUTES[minute] + _SECONDS[second]


# -- argument readers -------------------------------------------------------------
# Each takes the arguments object, a name, and whether the argument may be omitted
# or null, and returns the typed value (§3.5: null is the default where the type allows it).


def _present(args: Mapping[str, Any], name: str, default: Any, required: bool) -> Any:
    if name not in args:
        if required:
            raise ArgumentError(f"missing argument {name!r}")
        return default
    return args[name]


def arg_id(args: Mapping[str, Any], name: str, *, nullable: bool = False) -> str | None:
    value = _present(args, name, None, required=not nullable)
    if value is None and nullable:
        return None
    if not is_id(value):
        raise ArgumentError(f"{name!r} must be an Id")
    return str(value)


def arg_str(args: Mapping[str, Any], name: str, *, nullable: bool = False) -> str | None:
    value = _present(args, name, None, required=not nullable)
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise ArgumentError(f"{name!r} must be a String")
    return value


def arg_bool(args: Mapping[str, Any], name: str, default: bool) -> bool:
    value = _present(args, name, default, required=False)
    if not isinstance(value, bool):
        raise ArgumentError(f"{name!r} must be a Boolean")
    return value


def arg_int(args: Mapping[str, Any], name: str, default: int) -> int:
    value = _present(args, name, default, required=False)
    if not is_int(value):
        raise ArgumentError(f"{name!r} must be an Int")
    return int(value)


def arg_unsigned(args: Mapping[str, Any], name: str, *, positive: bool = False) -> int | None:
    """An ``UnsignedInt|null`` argument; ``positive`` also rejects 0 (§5.2 maxChanges)."""
    value = _present(args, name, None, required=False)
    if value is None:
        return None
    if not is_unsigned_int(value) or (positive and value == 0):
        kind = "a positive Int" if positive else "an UnsignedInt"
        raise ArgumentError(f"{name!r} must be {kind}")
    return int(value)


def arg_id_list(
    args: Mapping[str, Any], name: str, *, nullable: bool = True, allow_refs: bool = False
) -> list[str] | None:
    """An ``Id[]`` argument; ``allow_refs`` admits ``#creationId`` entries (§5.3)."""
    value = _present(args, name, None, required=not nullable)
    if value is None and nullable:
        return None
    if not isinstance(value, list):
        raise ArgumentError(f"{name!r} must be an array of Ids")
    if all(type(item) is str for item in value):
        lines = "\n".join(value)  # every one an Id, in one match (an initial sync sends 5,000)
        if lines.count("\n") == len(value) - 1 and _IDS_RE.fullmatch(lines):
            return list(value)  # (the count: no item held a line break of its own)
    for item in value:
        if not (is_id(item) or (allow_refs and is_creation_ref(item))):
            raise ArgumentError(f"{name!r} contains an invalid Id: {item!r}")
    return list(value)


def arg_str_list(args: Mapping[str, Any], name: str) -> list[str] | None:
    value = _present(args, name, None, required=False)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ArgumentError(f"{name!r} must be an array of Strings")
    return list(value)


def arg_object_map(
    args: Mapping[str, Any], name: str, *, refs: bool = False, required: bool = False
) -> dict[str, Any]:
    """An ``Id[Object]|null`` argument as a dict (empty when null); ``required``
    for an ``Id[Object]`` that must be given (RFC 8621 §4.8 ``emails``)."""
    value = _present(args, name, None, required=required)
    if value is None:
        if required:
            raise ArgumentError(f"{name!r} must be an object, not null")
        return {}
    if not isinstance(value, dict):
        raise ArgumentError(f"{name!r} must be an object")
    for key, item in value.items():
        if not (is_id(key) or (refs and is_creation_ref(key))):
            raise ArgumentError(f"{name!r} has an invalid key: {key!r}")
        if not isinstance(item, dict):
            raise ArgumentError(f"{name!r}[{key!r}] must be an object")
    return dict(value)


def is_creation_ref(value: object) -> bool:
    """``#`` followed by a creation id (RFC 8620 §5.3)."""
    return isinstance(value, str) and value.startswith("#") and is_id(value[1:])


def check_known(args: Mapping[str, Any], known: Sequence[str]) -> None:
    """Reject arguments a method does not define (§3.9: unknown data -> invalidArguments)."""
    unknown = [k for k in args if k not in known]
    if unknown:
        raise ArgumentError(f"unknown argument(s): {', '.join(sorted(unknown))}")
