"""What the configuration decides per user: the addresses they may send from,
where their Sieve scripts live, and what the submission capability says."""

from __future__ import annotations

import socket
from pathlib import Path

from maildir_jmap.config import Config
from maildir_jmap.core.types import JSONObject
from maildir_jmap.store.sieve import SieveLocation
from maildir_jmap.users import User


def sending_addresses(config: Config, user: User) -> tuple[str, ...]:
    """The users file's addresses; else the login if it is an address; else
    login@mail_domain (RFC 8621 §6: what Identities may use)."""
    if user.addresses:
        return user.addresses
    if "@" in user.name:
        return (user.name,)
    return (f"{user.name}@{config.mail_domain or socket.getfqdn()}",)


def sieve_location(config: Config, user: User) -> SieveLocation | None:
    if config.sieve_dir is None:
        return None
    # The userdb's home, never a guess from the Maildir when Dovecot gave one: two
    # virtual users with Maildirs side by side (/var/vmail/%d/%n) share a parent.
    values = {"home": str(user.home_dir()), "user": user.name}
    return SieveLocation(
        Path(config.sieve_dir.format(**values)).expanduser(),
        Path(config.sieve_active.format(**values)).expanduser(),
    )


def account_state_dir(config: Config, user: User) -> Path | None:
    """Where ``config.account_state`` puts this user's state, if it is set."""
    if config.account_state is None:
        return None
    values = {"home": str(user.home_dir()), "user": user.name}
    return Path(config.account_state.format(**values)).expanduser()


def submission_capability(config: Config) -> JSONObject:
    """RFC 8621 §1.3.2. Delayed send is ours (held here, then relayed), so
    FUTURERELEASE is offered whatever the smarthost supports; SIZE is the limit
    we check. The FUTURERELEASE date argument is left out so the Session does not
    change every second."""
    sending = config.sending
    return {
        "maxDelayedSend": sending.max_delayed_send,
        "submissionExtensions": {
            "FUTURERELEASE": [str(sending.max_delayed_send)],
            "SIZE": [str(sending.max_size)],
        },
    }
