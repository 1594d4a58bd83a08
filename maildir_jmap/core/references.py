"""Result references (RFC 8620 §3.7) and JSON Pointer (RFC 6901) with the ``*`` extension.

Also the ``#creationId`` lookups of §5.3, which share nothing with result
references but the octothorpe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from maildir_jmap.core.errors import MethodError
from maildir_jmap.core.request import Invocation
from maildir_jmap.core.types import JSONObject, parsed


class PointerError(ValueError):
    """A JSON Pointer is malformed or does not resolve."""


def split_pointer(pointer: str) -> list[str]:
    """RFC 6901 §3-4: ``""`` is the whole document, else ``/``-separated reference
    tokens with ``~1`` -> ``/`` and ``~0`` -> ``~`` (in that order)."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PointerError(f"JSON Pointer must start with '/': {pointer!r}")
    tokens = pointer[1:].split("/")
    for token in tokens:
        rest = token.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise PointerError(f"invalid escape in JSON Pointer token {token!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


def _array_index(token: str, length: int) -> int:
    # RFC 6901 §4: array indices are decimal without leading zeros; "-" (past the
    # end) never resolves to a value.
    if not token.isdigit() or not token.isascii() or (len(token) > 1 and token[0] == "0"):
        raise PointerError(f"{token!r} is not an array index")
    index = int(token)
    if index >= length:
        raise PointerError(f"array index {index} out of range")
    return index


def evaluate(document: Any, tokens: Sequence[str]) -> Any:
    """Evaluate reference tokens; ``*`` on an array maps the rest over its items and
    flattens any array results into one array (§3.7 step 3). Pre-serialized values
    (``Serialized``, from Email/get) are read back where the path enters them, and
    anything the result still holds of them is read back too: the method the
    reference feeds sees plain JSON values (its own copy of them)."""
    value = _evaluate(document, tokens)
    if isinstance(value, list | dict):
        return orjson.loads(orjson.dumps(value))
    return parsed(value)


def _evaluate(document: Any, tokens: Sequence[str]) -> Any:
    value = parsed(document)
    for position, token in enumerate(tokens):
        if isinstance(value, list):
            if token == "*":
                rest = tokens[position + 1 :]
                out: list[Any] = []
                for item in value:
                    result = _evaluate(item, rest)
                    if isinstance(result, list):
                        out.extend(result)
                    else:
                        out.append(result)
                return out
            value = parsed(value[_array_index(token, len(value))])
        elif isinstance(value, dict):
            if token not in value:
                raise PointerError(f"no member {token!r}")
            value = parsed(value[token])
        else:
            raise PointerError(f"cannot descend into a {type(value).__name__} with {token!r}")
    return value


def resolve_reference(reference: object, responses: Sequence[Invocation]) -> Any:
    """Resolve one ResultReference against the responses so far (§3.7)."""
    if not isinstance(reference, dict) or set(reference) != {"resultOf", "name", "path"}:
        raise MethodError(
            "invalidResultReference",
            "A ResultReference must have exactly resultOf, name and path.",
        )
    result_of, name, path = reference["resultOf"], reference["name"], reference["path"]
    if not all(isinstance(v, str) for v in (result_of, name, path)):
        raise MethodError("invalidResultReference", "resultOf, name and path must be Strings.")
    for response_name, arguments, call_id in responses:
        if call_id == result_of:  # step 1: the *first* response with that call id
            if response_name != name:  # step 2
                raise MethodError(
                    "invalidResultReference",
                    f"Response to {result_of!r} is {response_name!r}, not {name!r}.",
                )
            try:
                return evaluate(arguments, split_pointer(path))
            except PointerError as exc:
                raise MethodError("invalidResultReference", f"Path {path!r}: {exc}") from None
    raise MethodError("invalidResultReference", f"No response for method call id {result_of!r}.")


def resolve_arguments(arguments: JSONObject, responses: Sequence[Invocation]) -> JSONObject:
    """Replace every ``#name`` argument by the value its reference points at."""
    if not any(key.startswith("#") for key in arguments):
        return arguments
    resolved: JSONObject = {}
    for key, value in arguments.items():
        if key.startswith("#"):
            plain = key[1:]
            if plain in arguments:
                # §3.7: the same argument in normal and referenced form.
                raise MethodError("invalidArguments", f"Both {plain!r} and {key!r} were given.")
            resolved[plain] = resolve_reference(value, responses)
        else:
            resolved[key] = value
    return resolved


def resolve_creation_id(value: str, created_ids: Mapping[str, str]) -> str | None:
    """``#k1`` -> the id created for ``k1`` in this request, or None if unknown.
    A value without ``#`` is returned as it is."""
    if value.startswith("#"):
        return created_ids.get(value[1:])
    return value
