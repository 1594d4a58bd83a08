"""Failed-login throttling that a stranger cannot turn against a user (issue 17:
five wrong passwords used to lock the owner out for 15 minutes, right password
or not).

Modelled on Dovecot's auth penalty (src/auth/auth-penalty.h): every failure from
a client address raises that address's penalty, and its next attempt is held
2, 4, 8, then at most 15 seconds (less the time since its last failure) before
the password is even checked; the same wrong password again (a client retrying
a stale saved one) does not raise it; a success clears it. IPv6 addresses count
per /48, as Dovecot does, so one host cannot dodge it by walking its prefix.

Beyond that, per user name: once a name has had ``per_user`` failures in the
window, each further *failed* answer for it is held the same growing way, from
any address, so guessing one user's password from many addresses is slow too;
the right password is answered at once, so the owner is never delayed by it.

Only an address that keeps failing (``per_address`` failures in the window) is
refused outright with 429 until its failures age out; never a user name.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from dataclasses import dataclass

MAX_DELAY = 15.0
"""Dovecot's AUTH_PENALTY_MAX_SECS."""
IPV6_PREFIX = 48
"""Dovecot's PENALTY_IPV6_MASK_BITS."""


def penalty_delay(penalty: int, unit: float = 1.0) -> float:
    """Seconds for a penalty: 0, then 2, 4, 8, 15, 15 ... (auth_penalty_to_secs)."""
    if penalty <= 0:
        return 0.0
    return float(min(2 << min(penalty - 1, 8), MAX_DELAY)) * unit


@functools.lru_cache(maxsize=4096)
def address_key(address: str) -> str:
    """The key an address's failures count under: itself, an IPv4-mapped address
    as IPv4, an IPv6 address by its /48 (cached: every login asks)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/{IPV6_PREFIX}", strict=False))
    return str(ip)


@dataclass
class _Record:
    failures: list[float]
    """Times of counted failures within the window, oldest first."""
    last: float = 0.0
    last_password: bytes = b""


class Throttle:
    def __init__(
        self,
        per_user: int = 5,
        per_address: int = 20,
        window: float = 900.0,
        unit: float = 1.0,
        enabled: bool = True,
    ) -> None:
        self.limits = {"user": per_user, "address": per_address}
        self.window = window
        self.unit = unit
        """Scales every delay (1.0: Dovecot's seconds; tests use less)."""
        self.enabled = enabled
        self._key = secrets.token_bytes(16)
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], _Record] = {}

    def _recent(self, key: tuple[str, str], now: float) -> _Record:
        record = self._records.setdefault(key, _Record([]))
        cut = now - self.window
        while record.failures and record.failures[0] <= cut:
            record.failures.pop(0)
        return record

    def before(self, address: str) -> float:
        """How long an attempt from ``address`` is held before its password is
        checked; raises ``Refused`` for an address that keeps failing."""
        if not self.enabled:
            return 0.0
        now = time.monotonic()
        with self._lock:
            record = self._recent(("address", address_key(address)), now)
            count = len(record.failures)
            if count >= self.limits["address"]:
                raise Refused(record.failures[0] + self.window - now)
            return max(0.0, penalty_delay(count, self.unit) - (now - record.last))

    def failed(self, name: str, address: str, password: str) -> float:
        """Count a failure; how long its answer is held (the per-name penalty)."""
        if not self.enabled:
            return 0.0
        now = time.monotonic()
        digest = hmac.new(self._key, password.encode("utf-8", "replace"), hashlib.sha256).digest()
        with self._lock:
            if len(self._records) > 100_000:
                self._records.clear()
            by_address = self._recent(("address", address_key(address)), now)
            if by_address.last_password != digest or not by_address.failures:
                by_address.failures.append(now)
            by_address.last, by_address.last_password = now, digest
            by_name = self._recent(("user", name), now)
            by_name.failures.append(now)
            over = len(by_name.failures) - self.limits["user"]
        return penalty_delay(over, self.unit)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._records.pop(("address", address_key(address)), None)


class Refused(Exception):
    """The address keeps failing: 429 until ``retry_after`` seconds have passed."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many failed logins from this address; try again later")
        self.retry_after = max(1.0, retry_after)
