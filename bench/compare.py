"""JMAP against Dovecot IMAP on the same Maildir: initial sync of the INBOX, resync
after changes, and throughput with many clients (issue 9, figures 2, 3 and 6).

Both servers run as their own processes on loopback; every byte either client
exchanges goes through a counting TCP proxy, so "bytes on the wire" is what a
network would carry (TLS aside), headers and all. A round trip is one request
the client must wait for before it can go on: an IMAP command, an HTTP request.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import random
import re
import select
import shutil
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import rawclient
from bench.listview import USING, _server, list_view_calls
from bench.machine import cpu_ticks, stolen_since
from bench.push import PASSWORD, _percentile
from maildir_jmap.store.account import account_id_for

SYNC_PROPERTIES = [
    "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId", "inReplyTo",
    "sender", "from", "to", "cc", "bcc", "replyTo", "subject", "sentAt", "hasAttachment",
    "preview",
]  # fmt: skip
IMAP_ITEMS = "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)"


class CountingProxy:
    """A loopback TCP proxy to ``port`` that counts the bytes it carries."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.bytes = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> int:
        with self._lock:
            seen, self.bytes = self.bytes, 0
        return seen

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                ready, _, _ = select.select(list(peers), [], [], 60)
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
                    with self._lock:
                        self.bytes += len(data)
        except OSError:
            return
        finally:
            a.close()
            b.close()

    def close(self) -> None:
        self.listener.close()


@dataclass
class Run:
    round_trips: int
    bytes: int
    seconds: float


# -- IMAP ------------------------------------------------------------------------------------


class Imap:
    """imaplib with its round trips counted (one per tagged command)."""

    def __init__(self, port: int) -> None:
        self.client = imaplib.IMAP4("127.0.0.1", port)
        self.round_trips = 1  # the greeting
        from tests.dovecot import PASSWORD as IMAP_PASSWORD
        from tests.dovecot import USER as IMAP_USER

        self._check(self.client.login(IMAP_USER, IMAP_PASSWORD))

    def _check(self, reply: tuple[str, list[Any]]) -> list[Any]:
        self.round_trips += 1
        typ, data = reply
        if typ != "OK":
            raise RuntimeError(f"IMAP command failed: {data}")
        return data

    def command(self, name: str, *args: str) -> list[Any]:
        """A command whose untagged responses (SELECT's, ENABLE's) are returned."""
        self._check(self.client._simple_command(name, *args))
        if name == "SELECT":
            self.client.state = "SELECTED"  # imaplib's select() takes no parameters
        untagged = self.client.untagged_responses
        collected = [f"{key} {value!r}" for key, values in untagged.items() for value in values]
        untagged.clear()
        return collected

    def uid_fetch(self, uids: str) -> int:
        """UID FETCH of the list-view items; returns how many messages came."""
        data = self._check(self.client.uid("FETCH", uids, IMAP_ITEMS))
        heads = [d[0] if isinstance(d, tuple) else d for d in data]
        return sum(1 for h in heads if isinstance(h, bytes) and re.match(rb"\d+ \(", h))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.logout()


@dataclass
class ImapState:
    uidvalidity: int
    highest_modseq: int
    uidnext: int


def _number(lines: list[str], name: str) -> int:
    for line in lines:
        match = re.search(rf"{name} (\d+)", line)
        if match:
            return int(match.group(1))
    raise RuntimeError(f"no {name} in the SELECT response: {lines}")


def imap_initial_sync(proxy: CountingProxy) -> tuple[Run, ImapState, int]:
    """LOGIN, SELECT INBOX (CONDSTORE), UID FETCH 1:* (the usual list-view items)."""
    proxy.reset()
    started = time.perf_counter()
    imap = Imap(proxy.port)
    selected = imap.command("SELECT", "INBOX", "(CONDSTORE)")
    messages = imap.uid_fetch("1:*")
    elapsed = time.perf_counter() - started
    imap.close()
    state = ImapState(
        _number(selected, "UIDVALIDITY"),
        _number(selected, "HIGHESTMODSEQ"),
        _number(selected, "UIDNEXT"),
    )
    return Run(imap.round_trips, proxy.reset(), elapsed), state, messages


def imap_resync(proxy: CountingProxy, state: ImapState) -> Run:
    """RFC 7162 QRESYNC: SELECT reports flag changes and expunges since the known
    modseq; the new messages' list-view items are then fetched by UID."""
    proxy.reset()
    started = time.perf_counter()
    imap = Imap(proxy.port)
    imap.command("ENABLE", "QRESYNC")
    imap.command("SELECT", "INBOX", f"(QRESYNC ({state.uidvalidity} {state.highest_modseq}))")
    imap.uid_fetch(f"{state.uidnext}:*")
    elapsed = time.perf_counter() - started
    imap.close()
    return Run(imap.round_trips, proxy.reset(), elapsed)


# -- JMAP ------------------------------------------------------------------------------------


def _jmap_client(gzip: bool) -> httpx.Client:
    """A new client, so each run opens its own connection as the IMAP side does.
    Its construction is not a protocol cost and is kept out of the timings: httpx
    loads the system's CA certificates into an SSL context, 30-70 ms here, for a
    plain-HTTP loopback it never uses (a real client makes that context once)."""
    headers = {} if gzip else {"Accept-Encoding": "identity"}
    return httpx.Client(auth=("bench", PASSWORD), headers=headers, timeout=600)


def _post(client: httpx.Client, url: str, calls: list[list[Any]]) -> list[list[Any]]:
    response = client.post(url + "/jmap/api/", json={"using": USING, "methodCalls": calls})
    response.raise_for_status()
    responses: list[list[Any]] = response.json()["methodResponses"]
    for name, args, _ in responses:
        if name == "error":
            raise RuntimeError(f"JMAP error: {args}")
    return responses


def _session(client: httpx.Client, url: str) -> tuple[str, str, dict[str, Any]]:
    """The Session's mail account, its inbox and the core limits (two round trips)."""
    session = client.get(url + "/jmap/session").json()
    account: str = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
    query = {"accountId": account, "filter": {"role": "inbox"}}
    inbox: str = _post(client, url, [["Mailbox/query", query, "m"]])[0][1]["ids"][0]
    return account, inbox, session["capabilities"]["urn:ietf:params:jmap:core"]


def _account_and_inbox(client: httpx.Client, url: str) -> tuple[str, str]:
    account, inbox, _ = _session(client, url)
    return account, inbox


def jmap_initial_sync(proxy: CountingProxy, gzip: bool) -> tuple[Run, str, int]:
    """Session, then Email/query + Email/get pairs (maxObjectsInGet Emails each, as
    many pairs per request as maxCallsInRequest allows) until the INBOX is read."""
    proxy.reset()
    url = f"http://127.0.0.1:{proxy.port}"
    round_trips = 0
    seen = 0
    state = ""
    with _jmap_client(gzip) as client:  # made before the clock starts (see _jmap_client)
        started = time.perf_counter()
        account, inbox, limits = _session(client, url)
        page, pairs = limits["maxObjectsInGet"], limits["maxCallsInRequest"] // 2
        round_trips += 2
        position = 0
        while True:
            calls: list[list[Any]] = []
            for n in range(pairs):
                calls.append(["Email/query", {
                    "accountId": account, "filter": {"inMailbox": inbox},
                    "sort": [{"property": "receivedAt", "isAscending": False}],
                    "position": position + n * page, "limit": page, "calculateTotal": True,
                }, f"q{n}"])  # fmt: skip
                calls.append(["Email/get", {
                    "accountId": account, "properties": SYNC_PROPERTIES,
                    "#ids": {"resultOf": f"q{n}", "name": "Email/query", "path": "/ids"},
                }, f"g{n}"])  # fmt: skip
            responses = _post(client, url, calls)
            round_trips += 1
            total = responses[0][1]["total"]
            state = responses[1][1]["state"]
            seen += sum(len(r[1]["list"]) for r in responses if r[0] == "Email/get")
            position += pairs * page
            if position >= total:
                break
    elapsed = time.perf_counter() - started
    return Run(round_trips, proxy.reset(), elapsed), state, seen


def jmap_resync(proxy: CountingProxy, since: str, gzip: bool) -> Run:
    """One request: Email/changes, then the new Emails' list-view properties and the
    changed ones' keywords and mailboxIds by back-reference (the Session cached)."""
    proxy.reset()
    url = f"http://127.0.0.1:{proxy.port}"
    with _jmap_client(gzip) as client:
        started = time.perf_counter()
        account = account_id_for("bench")
        responses = _post(client, url, [
            ["Email/changes", {"accountId": account, "sinceState": since}, "c"],
            ["Email/get", {
                "accountId": account, "properties": SYNC_PROPERTIES,
                "#ids": {"resultOf": "c", "name": "Email/changes", "path": "/created"},
            }, "n"],
            ["Email/get", {
                "accountId": account, "properties": ["keywords", "mailboxIds"],
                "#ids": {"resultOf": "c", "name": "Email/changes", "path": "/updated"},
            }, "u"],
        ])  # fmt: skip
    elapsed = time.perf_counter() - started
    assert not responses[0][1]["hasMoreChanges"]
    return Run(1, proxy.reset(), elapsed)


# -- the comparison --------------------------------------------------------------------------


def _dovecot_changes(dovecot: Any, flags: int, new: int, seed: int) -> None:
    """Another client (straight to Dovecot, not counted) flags some INBOX messages
    and delivers new ones."""
    rng = random.Random(seed)
    client = dovecot.imap()
    _, data = client.select("INBOX")
    count = int(data[0])
    for number in rng.sample(range(1, count + 1), flags):
        client.store(str(number), "+FLAGS", r"(\Flagged)")
    for n in range(new):
        # Unique content: the same message again would join its Email (ids are
        # content-derived), not create one, when the bench runs twice on a Maildir.
        body = f"From: new@example.org\r\nSubject: new {seed}-{n}\r\n\r\n{time.time_ns()}\r\n"
        client.append("INBOX", None, None, body.encode())
    client.logout()


def _wait_for_jmap(url: str, since: str, created: int) -> None:
    """Until the JMAP server has reconciled Dovecot's changes (not measured)."""
    account = account_id_for("bench")
    deadline = time.monotonic() + 60
    with _jmap_client(True) as client:
        while time.monotonic() < deadline:
            changes = _post(
                client,
                url,
                [["Email/changes", {"accountId": account, "sinceState": since}, "c"]],
            )[0][1]
            if len(changes["created"]) >= created:
                time.sleep(0.3)  # let a last debounce window close
                return
            time.sleep(0.1)
    raise RuntimeError("the JMAP server did not see Dovecot's changes")


def compare(maildir: Path, state_dir: Path, workdir: Path, repeats: int) -> dict[str, float]:
    from tests.dovecot import Dovecot, available

    reason = available()
    if reason:
        raise RuntimeError(reason)
    dovecot = Dovecot(maildir, workdir / f"dovecot-{maildir.name}").start()
    out: dict[str, float] = {}
    try:
        with _server(maildir, state_dir, watch=True) as url:
            jmap_port = int(url.rsplit(":", 1)[1])
            imap_proxy, jmap_proxy = CountingProxy(dovecot.port), CountingProxy(jmap_port)
            try:
                imap_runs, jmap_runs, plain_runs, bytes_runs = [], [], [], []
                for _ in range(repeats + 1):  # the first of each warms caches
                    imap_run, imap_state, imap_count = imap_initial_sync(imap_proxy)
                    imap_runs.append(imap_run)
                    jmap_run, jmap_state, jmap_count = jmap_initial_sync(jmap_proxy, True)
                    jmap_runs.append(jmap_run)
                    plain_runs.append(jmap_initial_sync(jmap_proxy, False)[0])
                    bytes_runs.append(rawclient.initial_sync(jmap_proxy.port, SYNC_PROPERTIES))
                out |= _figures("sync", imap_runs[1:], jmap_runs[1:], plain_runs[1:])
                out["sync_jmap_bytes_rt"] = float(statistics.median(r[0] for r in bytes_runs[1:]))
                out["sync_jmap_bytes_ms"] = statistics.median(r[1] for r in bytes_runs[1:]) * 1000
                if {r[2] for r in bytes_runs} != {jmap_count}:
                    raise RuntimeError(f"the bytes client counted {bytes_runs}, not {jmap_count}")
                out["inbox_messages"] = float(jmap_count)
                out["imap_messages"] = float(imap_count)
                # Before the resync rounds add small messages, which would be the newest.
                from bench.workloads import imap_side, jmap_side

                out |= imap_side(dovecot.port, repeats) | jmap_side(jmap_port, repeats)
                imap_resyncs, jmap_resyncs, plain_resyncs = [], [], []
                for n in range(repeats):
                    _dovecot_changes(dovecot, 50, 10, seed=n)
                    _wait_for_jmap(url, jmap_state, 10)
                    imap_resyncs.append(imap_resync(imap_proxy, imap_state))
                    jmap_resyncs.append(jmap_resync(jmap_proxy, jmap_state, True))
                    plain_resyncs.append(jmap_resync(jmap_proxy, jmap_state, False))
                    # The next round starts from the state both clients now have.
                    imap_state = imap_initial_sync(imap_proxy)[1]
                    jmap_state = jmap_initial_sync(jmap_proxy, True)[1]
                out |= _figures("resync", imap_resyncs, jmap_resyncs, plain_resyncs)
            finally:
                imap_proxy.close()
                jmap_proxy.close()
    finally:
        dovecot.stop()
    return out


def _figures(name: str, imap: list[Run], jmap: list[Run], plain: list[Run]) -> dict[str, float]:
    def median(runs: list[Run], attribute: str) -> float:
        return float(statistics.median(getattr(r, attribute) for r in runs))

    return {
        f"{name}_imap_rt": median(imap, "round_trips"),
        f"{name}_jmap_rt": median(jmap, "round_trips"),
        f"{name}_imap_kb": median(imap, "bytes") / 1024,
        f"{name}_jmap_kb": median(jmap, "bytes") / 1024,
        f"{name}_jmap_plain_kb": median(plain, "bytes") / 1024,
        f"{name}_imap_ms": median(imap, "seconds") * 1000,
        f"{name}_jmap_ms": median(jmap, "seconds") * 1000,
    }


# -- many clients ----------------------------------------------------------------------------


async def _client(
    url: str,
    account: str,
    inbox: str,
    ids: list[str],
    until: float,
    seed: int,
    auth: tuple[str, str] = ("bench", PASSWORD),
) -> tuple[list[float], list[float], int]:
    rng = random.Random(seed)
    reads: list[float] = []
    writes: list[float] = []
    errors = 0
    async with httpx.AsyncClient(auth=auth, timeout=60) as client:
        while time.perf_counter() < until:
            if rng.random() < 0.8:
                calls = list_view_calls(account, inbox, position=rng.randrange(0, 500))
                bucket = reads
            else:
                target = rng.choice(ids)
                calls = [["Email/set", {
                    "accountId": account,
                    "update": {target: {"keywords/$flagged": rng.random() < 0.5 or None}},
                }, "s"]]  # fmt: skip
                bucket = writes
            started = time.perf_counter()
            response = await client.post(
                url + "/jmap/api/", json={"using": USING, "methodCalls": calls}
            )
            if response.status_code != 200:
                errors += 1
                continue
            bucket.append((time.perf_counter() - started) * 1000)
    return reads, writes, errors


def throughput(maildir: Path, state_dir: Path, clients: int, seconds: float) -> dict[str, float]:
    """``clients`` concurrent HTTP clients of one account for ``seconds``: with wrk
    (bench/wrk.py), four in five loop list views at random positions and one in
    five loops flag changes; without it, Python clients that each mix the two
    80/20 (they take a core of their own, which the server then lacks)."""
    with _server(maildir, state_dir, concurrent=clients) as url, _jmap_client(True) as client:
        account, inbox = _account_and_inbox(client, url)
        query = {"accountId": account, "filter": {"inMailbox": inbox}, "limit": 1000}
        ids = _post(client, url, [["Email/query", query, "q"]])[0][1]["ids"]
        if shutil.which("wrk"):
            from bench import wrk

            writers = clients // 5
            prepared = {"bench": (account, inbox, ids)}
            before = cpu_ticks()
            figures = wrk.split(url, prepared, clients - writers, writers, seconds)
            return {
                "clients": float(clients),
                "load": 1.0,
                "stolen": stolen_since(before),
                **figures,
            }

        async def run_all() -> list[tuple[list[float], list[float], int]]:
            until = time.perf_counter() + seconds
            tasks = [_client(url, account, inbox, ids, until, n) for n in range(clients)]
            return await asyncio.gather(*tasks)

        before = cpu_ticks()
        figures = timed_clients(run_all)
        return {"clients": float(clients), "load": 0.0, "stolen": stolen_since(before), **figures}


def timed_clients(
    run_all: Callable[[], Coroutine[Any, Any, list[tuple[list[float], list[float], int]]]],
) -> dict[str, float]:
    """Run the clients ``run_all`` gathers; their rate, latencies and failures."""
    started = time.perf_counter()
    results = asyncio.run(run_all())
    elapsed = time.perf_counter() - started
    reads = [t for r in results for t in r[0]]
    writes = [t for r in results for t in r[1]]
    return {
        "requests_per_s": (len(reads) + len(writes)) / elapsed,
        "write_share": len(writes) / max(1, len(reads) + len(writes)),
        "read_p50_ms": statistics.median(reads),
        "read_p95_ms": _percentile(reads, 0.95),
        "write_p50_ms": statistics.median(writes),
        "write_p95_ms": _percentile(writes, 0.95),
        "errors": float(sum(r[2] for r in results)),
    }


if __name__ == "__main__":
    work = Path(sys.argv[1])
    print(compare(work / "M", work / "s", work, 2), file=sys.stderr)
