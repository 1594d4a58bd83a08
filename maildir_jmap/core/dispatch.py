"""The method registry and the per-call loop (RFC 8620 §3.3-3.7).

Theory of operation. ``process`` takes a validated ``Request`` and a ``Context``
describing who is asking and which accounts they may use, and runs each method
call in order. For each call it resolves result references, checks the account
the call names (existence, capability, writability) and calls the handler.
Every failure becomes a method-level error in exactly one place (``_run_call``);
an exception we did not expect becomes ``serverFail`` with no traceback on the
wire (it is logged). Handlers may queue implicit calls (§5.4
onSuccessDestroyOriginal, RFC 8621 §7.5 onSuccessUpdateEmail); those run right
after their parent, with the parent's call id.

The core never does I/O: accounts are opaque ``backend`` objects the caller
supplies; handlers know their type.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from maildir_jmap.core.capabilities import CORE, CoreLimits
from maildir_jmap.core.errors import MethodError
from maildir_jmap.core.references import resolve_arguments
from maildir_jmap.core.request import Invocation, Request
from maildir_jmap.core.types import ArgumentError, JSONObject, is_id

log = logging.getLogger(__name__)

Handler = Callable[["Context", JSONObject], JSONObject]


class Backend(Protocol):
    """An account's storage, as the caller supplies it. The core never looks
    inside; each datatype narrows it to the store it knows."""

    @property
    def account_id(self) -> str: ...


@dataclass(frozen=True)
class AccountAccess:
    """One account as this user sees it: what the Session says about it, plus the
    backend object the handlers work on."""

    account_id: str
    name: str
    capabilities: Mapping[str, JSONObject]
    is_personal: bool = True
    is_read_only: bool = False
    backend: Backend | None = None

    def session_entry(self) -> JSONObject:
        return {
            "name": self.name,
            "isPersonal": self.is_personal,
            "isReadOnly": self.is_read_only,
            "accountCapabilities": dict(self.capabilities),
        }


@dataclass(frozen=True)
class Method:
    """A registered method. ``account_arg`` names the argument holding the account
    id that the dispatcher checks (None: the method takes no account)."""

    name: str
    capability: str
    handler: Handler
    account_arg: str | None = "accountId"
    writes: bool = False


class Registry:
    """Method name -> Method; the one table a datatype module adds itself to."""

    def __init__(self, methods: Iterable[Method] = ()) -> None:
        self._methods: dict[str, Method] = {}
        for method in methods:
            self.add(method)

    def add(self, method: Method) -> None:
        if method.name in self._methods:
            raise ValueError(f"method {method.name} registered twice")
        self._methods[method.name] = method

    def get(self, name: str) -> Method | None:
        return self._methods.get(name)

    def capabilities(self) -> frozenset[str]:
        return frozenset(m.capability for m in self._methods.values()) | {CORE}

    def names(self) -> list[str]:
        return sorted(self._methods)


@dataclass
class Context:
    """Everything a handler may use; built per request by the caller."""

    username: str
    accounts: Mapping[str, AccountAccess]
    limits: CoreLimits
    using: frozenset[str] = frozenset({CORE})
    created_ids: dict[str, str] = field(default_factory=dict)
    responses: list[Invocation] = field(default_factory=list)
    call_id: str = ""
    implicit_calls: list[tuple[str, JSONObject]] = field(default_factory=list)
    registry: Registry | None = None
    enter_account: Callable[[AccountAccess], None] | None = None
    """Called the first time a request touches an account (the HTTP layer takes the
    account's lock there, and may raise MethodError("serverUnavailable"))."""
    entered: set[str] = field(default_factory=set)
    credential: str = ""
    """Which credential authenticated the request (RFC 8620 §7.2 ties push
    subscriptions to it); empty outside HTTP."""
    push: object = None
    """The caller's PushSubscription access, if any: the core passes it on, and
    sync/push_subscription.py, the one reader, checks it is its ``PushAccess``."""
    outbound: object = None
    """The sending side for EmailSubmission, if any: mail/submission.py, the one
    reader, checks it implements its ``Outbound`` protocol."""
    observe: Callable[[str, str], None] | None = None
    """Told (method name, "ok" or the error type) after each call (metrics)."""
    serialized: bool = False
    """The transport writes the response with orjson, so handlers may answer with
    pre-serialized values (core/types.py ``Serialized``); in-process callers that
    read the response as Python values leave it False."""
    emit: Callable[[Invocation], None] | None = None
    """Told each Invocation of the response as soon as it is final, in order (the
    HTTP transport writes a large response while the calls after it run)."""

    def account(self, account_id: str, capability: str | None = None) -> AccountAccess:
        """The account named by a call, after the checks of §3.6.2."""
        access = self.accounts.get(account_id)
        if access is None:
            raise MethodError("accountNotFound")
        if capability is not None and capability != CORE and capability not in access.capabilities:
            raise MethodError("accountNotSupportedByMethod")
        if account_id not in self.entered:
            if self.enter_account is not None:
                self.enter_account(access)
            self.entered.add(account_id)
        return access

    def queue_implicit(self, name: str, arguments: JSONObject) -> None:
        """Run ``name`` right after the current call, with the same call id."""
        self.implicit_calls.append((name, arguments))


def process(request: Request, ctx: Context, registry: Registry) -> JSONObject:
    """Run every method call of ``request`` in order; return the Response arguments
    without ``sessionState`` (the HTTP layer knows the Session)."""
    ctx.using = request.using
    ctx.registry = registry
    if request.created_ids is not None:
        ctx.created_ids.update(request.created_ids)
    told = 0
    referenced = _referenced(request.method_calls) if ctx.emit is not None else set()
    for name, arguments, call_id in request.method_calls:
        ctx.call_id = call_id
        _run_call(ctx, registry, name, arguments, call_id)
        while ctx.implicit_calls:
            implicit_name, implicit_args = ctx.implicit_calls.pop(0)
            _run_call(ctx, registry, implicit_name, implicit_args, call_id, implicit=True)
        if ctx.emit is not None:
            for at in range(told, len(ctx.responses)):
                invocation = ctx.responses[at]
                ctx.emit(invocation)
                if invocation[2] not in referenced:
                    # Written out, and no call can point at it: its result (an
                    # initial sync's Email/get holds 5,000 Emails) goes now, so
                    # the next call reuses its memory instead of taking more.
                    ctx.responses[at] = (invocation[0], {}, invocation[2])
            told = len(ctx.responses)
    if ctx.emit is not None:
        response: JSONObject = {}  # every Invocation was emitted; the transport wrote them
    else:
        response = {"methodResponses": [list(r) for r in ctx.responses]}
    if request.created_ids is not None:
        response["createdIds"] = dict(ctx.created_ids)  # §3.4: only if given
    return response


def _referenced(calls: list[Invocation]) -> set[str]:
    """The call ids some ResultReference of ``calls`` names (§3.7: a ``#``
    argument's ``resultOf``), whether or not it resolves."""
    named: set[str] = set()
    for _, arguments, _ in calls:
        for key, value in arguments.items():
            if key.startswith("#") and isinstance(value, dict):
                result_of = value.get("resultOf")
                if isinstance(result_of, str):  # any other fails to resolve anyway
                    named.add(result_of)
    return named


def _run_call(
    ctx: Context,
    registry: Registry,
    name: str,
    arguments: JSONObject,
    call_id: str,
    *,
    implicit: bool = False,
) -> None:
    try:
        method = registry.get(name)
        # §3.3: a method whose capability the client did not opt in to is unknown to it.
        # Implicit calls are the server's own doing: the parent's capability covers them
        # (RFC 8621 §7.5 clients often omit mail when using only submission).
        if method is None or (not implicit and method.capability not in ctx.using):
            raise MethodError("unknownMethod", f"Unknown method {name!r}.")
        arguments = resolve_arguments(arguments, ctx.responses)
        if method.account_arg is not None:
            account_id = arguments.get(method.account_arg)
            if not is_id(account_id):
                raise MethodError("invalidArguments", f"{method.account_arg!r} must be an Id.")
            access = ctx.account(account_id, method.capability)
            if method.writes and access.is_read_only:
                raise MethodError("accountReadOnly")
        result = method.handler(ctx, arguments)
        ctx.responses.append((name, result, call_id))
    except MethodError as exc:
        ctx.implicit_calls.clear()
        ctx.responses.append(("error", exc.arguments(), call_id))
    except ArgumentError as exc:
        ctx.implicit_calls.clear()
        ctx.responses.append(
            ("error", {"type": "invalidArguments", "description": str(exc)}, call_id)
        )
    except Exception:
        # §3.6.2 serverFail; the details go to the log, never to the client.
        log.exception("method %s (call %s) failed", name, call_id)
        ctx.implicit_calls.clear()
        ctx.responses.append(
            (
                "error",
                {"type": "serverFail", "description": "An unexpected error occurred."},
                call_id,
            )
        )
    if ctx.observe is not None:
        last_name, last_args, _ = ctx.responses[-1]
        known = registry.get(name) is not None
        outcome = "ok" if last_name != "error" else str(last_args.get("type"))
        ctx.observe(name if known else "unknown", outcome)


def core_echo(ctx: Context, arguments: JSONObject) -> JSONObject:
    """RFC 8620 §4: Core/echo returns exactly the arguments it was given."""
    return arguments


CORE_METHODS = (Method("Core/echo", CORE, core_echo, account_arg=None),)
