"""A JMAP writer to be killed: ``python -m tests.store.crash_writer ROOT STATE SEED``
opens the account and makes random Email/set keyword changes and moves, Email/set
creates and Mailbox/set creates through the sans-IO core, as fast as it can, until
it is SIGKILLed. It prints "ready" once the account is open."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

from maildir_jmap.store.account import Account
from tests.jmap_calls import invoke

KEYWORDS = ["$seen", "$flagged", "$answered", "$work", "$later"]


def call(account: Account, name: str, **args: Any) -> None:
    invoke(account, name, **args)


def main(root: Path, state: Path, seed: int) -> None:
    rng = random.Random(seed)
    account = Account.open("u", root, state)
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        emails = list(account.index.emails)
        boxes = [m.id for m in account.index.mailboxes.values() if m.selectable]
        roll = rng.random()
        if roll < 0.5 and emails:
            updates = {
                rng.choice(emails): {f"keywords/{rng.choice(KEYWORDS)}": rng.choice([True, None])}
                for _ in range(rng.randint(1, 5))
            }
            call(account, "Email/set", update=updates)
        elif roll < 0.85 and emails:
            target = rng.sample(boxes, rng.randint(1, min(2, len(boxes))))
            call(
                account,
                "Email/set",
                update={rng.choice(emails): {"mailboxIds": dict.fromkeys(target, True)}},
            )
        elif roll < 0.95:
            body = {"value": f"burst {seed}-{n}"}
            call(
                account,
                "Email/set",
                create={
                    "c": {
                        "mailboxIds": {rng.choice(boxes): True},
                        "subject": f"written {seed}-{n}",
                        "bodyValues": {"1": body},
                        "textBody": [{"partId": "1", "type": "text/plain"}],
                    }
                },
            )
        else:
            call(account, "Mailbox/set", create={"m": {"name": f"Made {seed}-{n}"}})


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
