"""Identity/get, /changes, /set (RFC 8621 §6).

The addresses a user may send from come from the server's configuration
(``Account.addresses``: the users file's ``addresses``, else the login); a
``*@example.org`` entry allows the whole domain. Clients create, change and
destroy Identities within those addresses (``forbiddenFrom`` otherwise); one
default Identity for the first address is made on first use and cannot be
deleted (``mayDelete: false``). Identities live in the account's object store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from maildir_jmap.core import standard
from maildir_jmap.core.capabilities import SUBMISSION
from maildir_jmap.core.dispatch import AccountAccess, Context, Method
from maildir_jmap.core.errors import PropertyErrors, SetError, invalid_properties
from maildir_jmap.core.patch import apply_patch
from maildir_jmap.core.records import TypeSpec
from maildir_jmap.core.types import JSONObject
from maildir_jmap.mail.records import ObjectRecords, account_of
from maildir_jmap.store.account import Account
from maildir_jmap.store.objects import ObjectStore

IDENTITY = "Identity"
PROPERTIES = (
    "id",
    "name",
    "email",
    "replyTo",
    "bcc",
    "textSignature",
    "htmlSignature",
    "mayDelete",
)
DEFAULTS: dict[str, Any] = {
    "name": "",
    "replyTo": None,
    "bcc": None,
    "textSignature": "",
    "htmlSignature": "",
}
MAX_TEXT = 65_536


def may_send_from(addresses: Sequence[str], email: str) -> bool:
    """Whether ``email`` is one of ``addresses`` or in one of their ``*@domain``s.
    Domains compare case-insensitively; local parts exactly (RFC 5321 §2.4)."""
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        return False
    for allowed in addresses:
        a_local, _, a_domain = allowed.rpartition("@")
        if a_domain.lower() != domain.lower():
            continue
        if a_local == "*" or a_local == local:
            return True
    return False


def default_address(account: Account) -> str:
    first = account.addresses[0] if account.addresses else f"{account.username}@localhost"
    if first.startswith("*@"):
        login = account.username.partition("@")[0]
        return f"{login}{first[1:]}"
    return first


def identities(account: Account) -> ObjectStore:
    """The account's object store, with the default Identity made if there is none."""
    store = account.objects
    if next(store.all(IDENTITY), None) is None:
        store.put(
            IDENTITY,
            {
                "id": store.new_id("I"),
                **DEFAULTS,
                "email": default_address(account),
                "mayDelete": False,
            },
        )
        account.commit_objects()
    return store


def _one_line(text: str) -> bool:
    """No control characters: a name ends up in a From field (RFC 5322 §2.2, a
    CR or LF would inject header fields)."""
    return not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def _addresses(value: object, name: str) -> list[dict[str, Any]] | None:
    """An ``EmailAddress[]|null`` value (RFC 8621 §4.1.2.3)."""
    if value is None:
        return None
    ok = isinstance(value, list) and all(
        isinstance(a, dict)
        and set(a) <= {"name", "email"}
        and isinstance(a.get("email"), str)
        and "@" in a["email"]
        and _one_line(a["email"])
        and not any(c.isspace() for c in a["email"])
        and (a.get("name") is None or (isinstance(a["name"], str) and _one_line(a["name"])))
        for a in value
    )
    if not ok or not isinstance(value, list):
        raise invalid_properties(name, description=f"{name} must be null or EmailAddress[]")
    return [{"name": a.get("name"), "email": a["email"]} for a in value]


def _check(obj: JSONObject) -> JSONObject:
    """Validate a whole Identity (after defaults or a patch); the stored form.
    Every bad property is reported, not only the first (RFC 8620 §5.3)."""
    errors = PropertyErrors()
    unknown = [k for k in obj if k not in PROPERTIES]
    if unknown:
        errors.add(*unknown, description="unknown properties")
    for name in ("name", "textSignature", "htmlSignature"):
        value = obj.get(name)
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            errors.add(name, description=f"{name} must be a String")
    if isinstance(obj.get("name"), str) and not _one_line(obj["name"]):
        errors.add("name", description="name must be one line without control characters")
    email = obj.get("email")
    if (
        not isinstance(email, str)
        or "@" not in email
        or any(c.isspace() for c in email)
        or not _one_line(email)
    ):
        errors.add("email", description="email must be an address")
    reply_to = errors.check(lambda: _addresses(obj.get("replyTo"), "replyTo"), None)
    bcc = errors.check(lambda: _addresses(obj.get("bcc"), "bcc"), None)
    errors.raise_any()
    return {**obj, "replyTo": reply_to, "bcc": bcc}


class IdentityRecords(ObjectRecords):
    """Identities: readable, changing and writable (core/records.py)."""

    type_name = IDENTITY

    def __init__(self, account: Account) -> None:
        super().__init__(account)
        identities(account)

    def create(self, ctx: Context, creation_id: str, obj: JSONObject) -> JSONObject:
        for server_set in ("id", "mayDelete"):
            if server_set in obj:
                raise invalid_properties(server_set, description="server-set property")
        record = _check({**DEFAULTS, **{k: v for k, v in obj.items() if v is not None}})
        if not may_send_from(self.account.addresses, record["email"]):
            raise SetError("forbiddenFrom", f"you may not send from {record['email']}")
        record["id"] = self.store.new_id("I")
        record["mayDelete"] = True
        self.store.put(IDENTITY, record)
        created = {"id": record["id"], "mayDelete": True}
        created |= {k: v for k, v in DEFAULTS.items() if k not in obj}
        return created

    def update(self, ctx: Context, record_id: str, patch: JSONObject) -> JSONObject | None:
        current = self.store.get(IDENTITY, record_id)
        if current is None:
            raise SetError("notFound")
        patched = apply_patch(current, patch)
        for key, default in DEFAULTS.items():  # §5.3: null resets to the default
            if patched.get(key) is None:
                patched[key] = default
        for immutable in ("id", "email", "mayDelete"):
            if patched.get(immutable) != current.get(immutable):
                raise invalid_properties(immutable, description=f"{immutable} cannot change")
        self.store.put(IDENTITY, _check(patched))
        return None

    def destroy(self, ctx: Context, record_id: str, options: JSONObject) -> None:
        current = self.store.get(IDENTITY, record_id)
        if current is None:
            raise SetError("notFound")
        if not current.get("mayDelete"):
            raise SetError("forbidden", "this Identity cannot be deleted")
        self.store.drop(IDENTITY, record_id)


def records_for(ctx: Context, access: AccountAccess) -> IdentityRecords:
    return IdentityRecords(account_of(access))


SPEC = TypeSpec(
    name=IDENTITY,
    capability=SUBMISSION,
    is_property=lambda p: p in PROPERTIES,
    default_properties=PROPERTIES,
)


def methods() -> list[Method]:
    return standard.methods(SPEC, get=records_for, changes=records_for, set=records_for)
