"""The login gate (server/login.py): a password verified moments ago is answered
without a worker thread or argon2, and never around the throttle."""

from __future__ import annotations

from pathlib import Path

import pytest

from maildir_jmap.server.login import Login, Throttled, Unauthorized
from maildir_jmap.server.throttle import Throttle
from maildir_jmap.tokens import TokenStore
from maildir_jmap.users import User, UserDirectory, hash_password


async def test_a_remembered_password_is_still_held_and_refused_by_its_address(
    tmp_path: Path,
) -> None:
    """The fast path of a password verified moments ago (no thread, no argon2)
    comes after the throttle: an address that keeps failing is refused even with
    the right password, and a right one resets its penalty as Dovecot's does."""
    users = UserDirectory({"alice": User("alice", tmp_path, hash_password("right"))})
    login = Login(users, TokenStore(tmp_path / "tokens"), Throttle(per_address=3, unit=0.01))
    assert (await login.password("alice", "right", "192.0.2.1", True)).name == "alice"
    assert users.remembered("alice", "right") is not None
    for wrong in ("a", "b"):
        with pytest.raises(Unauthorized):
            await login.password("alice", wrong, "192.0.2.1", True)
    assert (await login.password("alice", "right", "192.0.2.1", True)).name == "alice"
    assert login.throttle.before("192.0.2.1") == 0  # the success reset the address
    for wrong in ("c", "d", "e"):
        with pytest.raises(Unauthorized):
            await login.password("alice", wrong, "192.0.2.1", True)
    with pytest.raises(Throttled):
        await login.password("alice", "right", "192.0.2.1", True)
    assert (await login.password("alice", "right", "198.51.100.9", True)).name == "alice"
