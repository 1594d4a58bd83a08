"""The users file as the server holds it (users.py ``UsersFile``)."""

from __future__ import annotations

import os
from pathlib import Path

from maildir_jmap.users import User, UsersFile, hash_password, save_users_file


def test_a_changed_file_is_reread_and_a_broken_one_keeps_the_users(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    save_users_file(path, {"alice": User("alice", tmp_path, hash_password("a"))})
    users = UsersFile(path)
    assert users.refresh() is False  # unchanged: not read again
    save_users_file(path, {"bob": User("bob", tmp_path, hash_password("b"))})
    assert users.refresh() is True
    assert users.names() == ["bob"]
    assert users.verify("bob", "b") is not None
    path.write_text("[users.carol\nbroken")
    os.utime(path, ns=(1, 1))
    assert users.refresh() is False
    assert users.names() == ["bob"]  # kept
    problem = users.ready()
    assert problem is not None
    assert problem.startswith("the users file cannot be read")
    save_users_file(path, {"bob": User("bob", tmp_path, hash_password("b"))})
    assert users.refresh() is True
    assert users.ready() is None


def test_a_password_is_remembered_only_once_verified_and_only_until_it_changes(
    tmp_path: Path,
) -> None:
    """``remembered`` (the event loop's check, no argon2): nothing before a
    verification, nothing for another password, nothing once the users file
    gives the user a new password (a re-read forgets what was verified)."""
    path = tmp_path / "users.toml"
    save_users_file(path, {"alice": User("alice", tmp_path, hash_password("old"))})
    users = UsersFile(path)
    assert users.remembered("alice", "old") is None
    assert users.verify("alice", "wrong") is None
    assert users.remembered("alice", "wrong") is None
    assert users.verify("alice", "old") is not None
    remembered = users.remembered("alice", "old")
    assert remembered is not None
    assert remembered.name == "alice"
    assert users.remembered("alice", "old-") is None
    assert users.remembered("bob", "old") is None
    save_users_file(path, {"alice": User("alice", tmp_path, hash_password("new"))})
    assert users.refresh() is True
    assert users.remembered("alice", "old") is None
    assert users.verify("alice", "old") is None
