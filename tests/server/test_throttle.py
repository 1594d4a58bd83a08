"""Failed-login throttling (server/throttle.py): Dovecot's auth penalty shape per
address, slow failures per user name, 429 only for an address that keeps failing."""

from __future__ import annotations

import pytest

from maildir_jmap.server.throttle import Refused, Throttle, address_key, penalty_delay


def test_delays_grow_like_dovecots_auth_penalty() -> None:
    assert [penalty_delay(n) for n in range(7)] == [0, 2, 4, 8, 15, 15, 15]
    assert penalty_delay(100) == 15


def test_ipv6_counts_per_48_and_mapped_ipv4_as_ipv4() -> None:
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:ffff::9")
    assert address_key("2001:db8:2::1") != address_key("2001:db8:1::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"


def test_an_address_is_held_longer_after_each_failure_then_refused() -> None:
    throttle = Throttle(per_user=100, per_address=4)
    assert throttle.before("192.0.2.1") == 0
    for n, password in enumerate(["a", "b", "c"], 1):
        throttle.failed("alice", "192.0.2.1", password)
        assert throttle.before("192.0.2.1") == pytest.approx(penalty_delay(n), abs=0.1)
    assert throttle.before("198.51.100.9") == 0  # another address is not held
    throttle.failed("alice", "192.0.2.1", "d")
    with pytest.raises(Refused) as refused:
        throttle.before("192.0.2.1")
    assert refused.value.retry_after > 800


def test_the_same_wrong_password_again_does_not_raise_the_penalty() -> None:
    """A client retrying a stale saved password (Dovecot: same password checksum)."""
    throttle = Throttle(per_address=3)
    for _ in range(10):
        throttle.failed("alice", "192.0.2.1", "old-password")
    assert throttle.before("192.0.2.1") == pytest.approx(2, abs=0.1)


def test_a_success_clears_the_address() -> None:
    throttle = Throttle()
    throttle.failed("alice", "192.0.2.1", "x")
    throttle.succeeded("192.0.2.1")
    assert throttle.before("192.0.2.1") == 0


def test_a_user_name_slows_failures_only_and_never_refuses() -> None:
    """Guessing one name from many addresses: every failed answer for it gets
    slower past ``per_user``; the name itself is never refused (no lockout)."""
    throttle = Throttle(per_user=3, per_address=100)
    held = [throttle.failed("alice", f"192.0.2.{n}", f"guess{n}") for n in range(6)]
    assert held == [0, 0, 0, 2, 4, 8]
    assert throttle.before("198.51.100.1") == 0  # the owner, elsewhere: not held


def test_off_means_dovecots_auth_decides() -> None:
    throttle = Throttle(per_address=1, enabled=False)
    for _ in range(5):
        assert throttle.failed("alice", "192.0.2.1", "x") == 0
    assert throttle.before("192.0.2.1") == 0
