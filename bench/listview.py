"""List-view and search latency over HTTP (RFC 8621 §4.4 + §4.2 in one request).

The server is the real app with the mail datatypes enabled, in its own process
on loopback, serving an index built beforehand by the index benchmark.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.push import PASSWORD, _percentile, running_server

SERVER = r"""
import sys, uvicorn
from pathlib import Path
from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CoreLimits
from maildir_jmap.http.app import create_app
from maildir_jmap.server.registry import build_registry
from maildir_jmap.users import User, UserDirectory, hash_password
maildir, state, port, password = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
watch, concurrent = sys.argv[5] == "watch", int(sys.argv[6])
users = UserDirectory({"bench": User("bench", maildir, hash_password(password))})
limits = CoreLimits(maxConcurrentRequests=concurrent)
config = Config(state_dir=state, watch=watch, limits=limits)
app = create_app(config, users, registry=build_registry())
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
"""
LIST_PROPERTIES = [
    "from", "subject", "preview", "keywords", "mailboxIds", "threadId", "receivedAt", "hasAttachment",
]  # fmt: skip
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]


def _server(maildir: Path, state: Path, *, watch: bool = False, concurrent: int = 8) -> Any:
    """The app in its own process; ``watch`` follows Dovecot's changes (inotify),
    ``concurrent`` is maxConcurrentRequests (many clients of one account)."""
    argv = [sys.executable, "-c", SERVER, str(maildir), str(state), "{port}", PASSWORD,
            "watch" if watch else "still", str(concurrent)]  # fmt: skip
    return running_server(argv, "bench")


def _request(
    client: httpx.Client, url: str, calls: list[list[Any]]
) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = client.post(url + "/jmap/api/", json={"using": USING, "methodCalls": calls})
    response.raise_for_status()
    elapsed = (time.perf_counter() - started) * 1000
    body: dict[str, Any] = response.json()
    return elapsed, body


def list_view_calls(
    account: str, inbox: str, filter_: dict[str, Any] | None = None, position: int = 0
) -> list[list[Any]]:
    return [
        ["Email/query", {
            "accountId": account, "filter": filter_ or {"inMailbox": inbox},
            "sort": [{"property": "receivedAt", "isAscending": False}],
            "collapseThreads": True, "position": position, "limit": 50,
        }, "q"],
        ["Email/get", {
            "accountId": account, "properties": LIST_PROPERTIES,
            "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
        }, "g"],
    ]  # fmt: skip


def measure(maildir: Path, state: Path, repeats: int) -> dict[str, float]:
    from bench.generate import WORDS

    with (
        _server(maildir, state) as url,
        httpx.Client(auth=("bench", PASSWORD), timeout=600) as client,
    ):
        session = client.get(url + "/jmap/session").json()
        account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        _, boxes = _request(
            client,
            url,
            [["Mailbox/query", {"accountId": account, "filter": {"role": "inbox"}}, "m"]],
        )
        inbox = boxes["methodResponses"][0][1]["ids"][0]
        first, body = _request(client, url, list_view_calls(account, inbox))
        assert len(body["methodResponses"][1][1]["list"]) == 50
        cached = [_request(client, url, list_view_calls(account, inbox))[0] for _ in range(repeats)]
        started = time.perf_counter()
        _request(
            client,
            url,
            [["Email/query", {"accountId": account, "filter": {"text": "warmup"}}, "w"]],
        )
        search_build = time.perf_counter() - started
        searches = []
        for n in range(repeats):
            word = WORDS[n % len(WORDS)]
            calls = list_view_calls(account, inbox, {"text": word[:4]})
            searches.append(_request(client, url, calls)[0])
    return {
        "list_first_ms": first,
        "list_p50_ms": statistics.median(cached),
        "list_p95_ms": _percentile(cached, 0.95),
        "search_build_s": search_build,
        "search_p50_ms": statistics.median(searches),
        "search_p95_ms": _percentile(searches, 0.95),
    }


if __name__ == "__main__":
    print(measure(Path(sys.argv[1]), Path(sys.argv[2]), 20), file=sys.stderr)
    os._exit(0)
