"""Two workloads side by side with Dovecot IMAP on the same Maildir (issue 18):

- *full messages*: 50 whole messages, as a client opening them does: IMAP
  ``UID FETCH <50 newest> BODY.PEEK[]`` (newest by ``UID SORT (REVERSE
  ARRIVAL)``) against JMAP Email/get of the same 50 (newest by receivedAt) with
  ``bodyStructure`` and ``fetchAllBodyValues`` (the ids already known), read by
  httpx and decoded, and read as bytes (bench/rawclient.py);
- *attachment-name search*: a word that only attachments' file names carry
  (the generator's ``photo.jpg``; ``photo`` is not in its body vocabulary):
  IMAP ``UID SEARCH TEXT photo`` in INBOX against JMAP Email/query
  ``{inMailbox, text: "photo"}`` with ``calculateTotal``; hits and time.

Medians over ``repeats`` after one warm-up run each."""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.compare import Imap, _account_and_inbox, _jmap_client, _post
from bench.rawclient import EMAIL_MARK, BytesClient

FULL_MESSAGES = 50
WORD = "photo"


def _timed(run: Any, repeats: int) -> tuple[Any, float]:
    run()  # warm-up
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return result, statistics.median(times) * 1000


def imap_side(port: int, repeats: int) -> dict[str, float]:
    imap = Imap(port)
    try:
        imap.command("SELECT", "INBOX")
        # The JMAP side's 50: newest first by arrival (INTERNALDATE, as receivedAt).
        newest = imap._check(imap.client.uid("SORT", "(REVERSE ARRIVAL)", "UTF-8", "ALL"))
        uids = newest[0].split()[:FULL_MESSAGES]
        wanted = b",".join(uids).decode()

        def fetch() -> int:
            data = imap._check(imap.client.uid("FETCH", wanted, "(BODY.PEEK[])"))
            return sum(len(d[1]) for d in data if isinstance(d, tuple))

        def search() -> int:
            found = imap._check(imap.client.uid("SEARCH", "TEXT", WORD))
            return len(found[0].split())

        fetched, fetch_ms = _timed(fetch, repeats)
        hits, search_ms = _timed(search, repeats)
    finally:
        imap.close()
    return {
        "full_imap_ms": fetch_ms,
        "full_imap_kb": fetched / 1024,
        "attsearch_imap_ms": search_ms,
        "attsearch_imap_hits": float(hits),
    }


def jmap_side(port: int, repeats: int) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}"
    with _jmap_client(True) as client:
        account, inbox = _account_and_inbox(client, url)
        newest = {
            "accountId": account,
            "filter": {"inMailbox": inbox},
            "sort": [{"property": "receivedAt", "isAscending": False}],
            "limit": FULL_MESSAGES,
        }
        ids = _post(client, url, [["Email/query", newest, "q"]])[0][1]["ids"]
        get = {
            "accountId": account,
            "ids": ids,
            "properties": ["id", "blobId", "threadId", "mailboxIds", "keywords", "size",
                           "receivedAt", "messageId", "from", "to", "subject", "sentAt",
                           "bodyStructure", "bodyValues", "textBody", "htmlBody",
                           "attachments"],
            "fetchAllBodyValues": True,
        }  # fmt: skip

        def fetch() -> int:
            return len(_post(client, url, [["Email/get", get, "g"]])[0][1]["list"])

        search = {
            "accountId": account,
            "filter": {"inMailbox": inbox, "text": WORD},
            "calculateTotal": True,
            "limit": 50,
        }

        def query() -> int:
            total: int = _post(client, url, [["Email/query", search, "s"]])[0][1]["total"]
            return total

        _, fetch_ms = _timed(fetch, repeats)
        raw = BytesClient(port)
        calls = [["Email/get", get, "g"]]
        counted, bytes_ms = _timed(lambda: raw.post(calls).count(EMAIL_MARK), repeats)
        raw.close()
        if counted != FULL_MESSAGES:
            raise RuntimeError(f"the bytes client counted {counted} Emails")
        hits, search_ms = _timed(query, repeats)
    return {
        "full_jmap_ms": fetch_ms,
        "full_jmap_bytes_ms": bytes_ms,
        "attsearch_jmap_ms": search_ms,
        "attsearch_jmap_hits": float(hits),
    }


ROWS = [
    ("full_imap_ms", "50 full messages, IMAP UID FETCH BODY.PEEK[] (ms, median)", "{:.1f}"),
    ("full_jmap_ms", "50 full messages, JMAP Email/get with body values (ms)", "{:.1f}"),
    (
        "full_jmap_bytes_ms",
        "50 full messages, JMAP answer read as bytes like IMAP's (ms)",
        "{:.1f}",
    ),
    ("attsearch_imap_hits", "attachment-name search, IMAP SEARCH TEXT hits in INBOX", "{:.0f}"),
    ("attsearch_jmap_hits", "attachment-name search, JMAP Email/query text hits", "{:.0f}"),
    ("attsearch_imap_ms", "attachment-name search, IMAP (ms, median)", "{:.1f}"),
    ("attsearch_jmap_ms", "attachment-name search, JMAP (ms, median)", "{:.1f}"),
]
