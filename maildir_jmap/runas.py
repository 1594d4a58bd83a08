"""Who the command line runs as: run as root, ``index`` and ``serve`` first become
the owner of what they will write (issue 15: root-owned files in the state
directory locked the service user out), as doveadm becomes the mail user."""

from __future__ import annotations

import logging
import os
import pwd
import sys
from pathlib import Path

from maildir_jmap import dovecot_config
from maildir_jmap.config import Config
from maildir_jmap.console import CliError, user_name
from maildir_jmap.users import Users

log = logging.getLogger(__name__)


def become_owner(state_dir: Path | None, maildir: Path) -> None:
    """Run as root, ``index`` would leave root-owned files in the state directory and
    the service user would then get 503 (issue 15). Root becomes the owner of the
    state directory (when it exists, else of the Maildir) first, as doveadm becomes
    the mail user; a root-owned one stays root's."""
    if os.geteuid() != 0:
        return
    model = state_dir if state_dir is not None and state_dir.exists() else maildir
    st = model.stat()
    _switch_to(st.st_uid, st.st_gid, str(model))


def _switch_to(uid: int, gid: int, why: str, check_python: bool = False) -> None:
    """Drop root for ``uid``/``gid`` (nothing to do for root itself). With
    ``check_python``, refuse in one line when that user could not go on running
    this Python (a venv under /root): every later import would fail."""
    if uid == 0 or os.geteuid() != 0:
        return
    if check_python and not _python_readable_by(uid, gid):
        who = user_name(uid)
        raise CliError(
            f"cannot run as {who} (the owner of {why}): {who} cannot read this Python "
            f"({os.path.realpath(sys.executable)}); install maildir-jmap where {who} can "
            f"(python3 -m venv /opt/maildir-jmap), or start it as {who}"
        )
    try:
        name = pwd.getpwuid(uid).pw_name
        os.initgroups(name, gid)
    except KeyError:
        name = str(uid)
        os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    log.info("running as %s, the owner of %s", name, why)


def _python_readable_by(uid: int, gid: int) -> bool:
    """Whether ``uid`` could run this interpreter and read its standard library
    (checked with root's effective ids set to it for a moment)."""
    paths = [sys.executable, os.path.dirname(os.__file__)]
    os.setegid(gid)
    os.seteuid(uid)
    try:
        return all(os.access(p, os.R_OK | os.X_OK, effective_ids=True) for p in paths)
    finally:
        os.seteuid(0)
        os.setegid(0)


def _give_state_dir(path: Path, uid: int, gid: int) -> None:
    """Our state directory (never mail) to the user we are about to become."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for top, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(os.path.join(top, name), uid, gid, follow_symlinks=False)
    os.chown(path, uid, gid)


def serve_as_owner(
    config: Config,
    users: Users,
    dovecot: dovecot_config.DovecotConfig | None = None,
    check_python: bool = True,
) -> None:
    """Run as root, ``serve`` first becomes who owns what it will write: the state
    directory's owner when there is one, else Dovecot's ``mail_uid`` (virtual
    users all belong to it), else the owner of the one Maildir served. Files it
    creates then belong to the Maildirs' owner, as Dovecot's do."""
    if os.geteuid() != 0:
        return
    if config.state_dir.exists() and config.state_dir.stat().st_uid != 0:
        info = config.state_dir.stat()
        _switch_to(info.st_uid, info.st_gid, str(config.state_dir), check_python)
        return
    uid = dovecot.settings.get("mail_uid", "") if dovecot else ""
    if uid:
        try:
            entry = pwd.getpwuid(int(uid)) if uid.isdigit() else pwd.getpwnam(uid)
        except KeyError:
            raise CliError(f"Dovecot's mail_uid {uid!r} is not a user here") from None
        _give_state_dir(config.state_dir, entry.pw_uid, entry.pw_gid)
        _switch_to(entry.pw_uid, entry.pw_gid, f"Dovecot's mail (mail_uid = {uid})", check_python)
        return
    owners = set()
    for name in users.names():
        user = users.get(name)
        if user is not None and user.maildir.exists():
            info = user.maildir.stat()
            owners.add((info.st_uid, info.st_gid))
    if len(owners) == 1:
        uid_, gid_ = owners.pop()
        if uid_ != 0:
            _give_state_dir(config.state_dir, uid_, gid_)
        _switch_to(uid_, gid_, "the Maildirs", check_python)
    elif len(owners) > 1:
        raise CliError(
            "refusing to serve Maildirs of several owners as root: run it as their "
            "mail user (User= in the unit), or one server per owner"
        )
