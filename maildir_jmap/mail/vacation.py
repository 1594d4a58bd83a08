"""VacationResponse/get and /set (RFC 8621 §8), applied as a Pigeonhole Sieve
script (store/sieve.py). Registered only when the server is configured with a
Sieve location, so the capability is advertised only where it takes effect."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from maildir_jmap.core import standard
from maildir_jmap.core.capabilities import VACATION
from maildir_jmap.core.dispatch import AccountAccess, Context, Method
from maildir_jmap.core.errors import SetError, invalid_properties
from maildir_jmap.core.patch import apply_patch
from maildir_jmap.core.records import TypeSpec
from maildir_jmap.core.types import ArgumentError, JSONObject, parse_utc_date
from maildir_jmap.mail.records import ObjectRecords, account_of
from maildir_jmap.store.sieve import Vacation, install

VACATION_TYPE = "VacationResponse"
SINGLETON = "singleton"
PROPERTIES = ("id", "isEnabled", "fromDate", "toDate", "subject", "textBody", "htmlBody")
DEFAULT: dict[str, Any] = {
    "id": SINGLETON,
    "isEnabled": False,
    "fromDate": None,
    "toDate": None,
    "subject": None,
    "textBody": None,
    "htmlBody": None,
}
MAX_TEXT = 65_536


def _check(obj: JSONObject) -> Vacation:
    if set(obj) - set(PROPERTIES):
        raise invalid_properties(*sorted(set(obj) - set(PROPERTIES)))
    if not isinstance(obj["isEnabled"], bool):
        raise invalid_properties("isEnabled", description="isEnabled must be a Boolean")
    dates = {}
    for name in ("fromDate", "toDate"):
        try:
            dates[name] = None if obj[name] is None else parse_utc_date(obj[name])
        except ArgumentError:
            raise invalid_properties(name, description=f"{name} must be a UTCDate") from None
    for name in ("subject", "textBody", "htmlBody"):
        value = obj[name]
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
            raise invalid_properties(name, description=f"{name} must be a String or null")
        if name == "subject" and isinstance(value, str) and ("\r" in value or "\n" in value):
            raise invalid_properties(name, description="subject must be one line")
    return Vacation(
        obj["isEnabled"],
        dates["fromDate"],
        dates["toDate"],
        obj["subject"],
        obj["textBody"],
        obj["htmlBody"],
        (),
    )


class VacationRecords(ObjectRecords):
    type_name = VACATION_TYPE

    def current(self) -> dict[str, Any]:
        return dict(self.store.get(VACATION_TYPE, SINGLETON) or DEFAULT)

    def records(self) -> dict[str, dict[str, Any]]:
        return {SINGLETON: self.current()}  # §8.1: always exactly one

    def create(self, ctx: Context, creation_id: str, obj: JSONObject) -> JSONObject:
        raise SetError("singleton", "there is exactly one VacationResponse")

    def update(self, ctx: Context, record_id: str, patch: JSONObject) -> JSONObject | None:
        if record_id != SINGLETON:
            raise SetError("notFound")
        current = self.current()
        patched = apply_patch(current, patch)
        for key, default in DEFAULT.items():
            patched.setdefault(key, default)
        if patched["id"] != SINGLETON:
            raise invalid_properties("id", description="id is immutable")
        vacation = _check(patched)
        location = self.account.sieve
        if location is None:
            raise SetError("forbidden", "no Sieve location is configured")
        addresses = tuple(a for a in self.account.addresses if not a.startswith("*@"))
        # The script first: if writing it fails, the record is not changed.
        install(location, replace(vacation, addresses=addresses))
        self.store.put(VACATION_TYPE, patched)
        return None

    def destroy(self, ctx: Context, record_id: str, options: JSONObject) -> None:
        raise SetError("singleton", "the VacationResponse cannot be destroyed")


def records_for(ctx: Context, access: AccountAccess) -> VacationRecords:
    return VacationRecords(account_of(access))


SPEC = TypeSpec(
    name=VACATION_TYPE,
    capability=VACATION,
    is_property=lambda p: p in PROPERTIES,
    default_properties=PROPERTIES,
)


def methods() -> list[Method]:
    return standard.methods(SPEC, get=records_for, set=records_for)
