"""JMAP through the standard library's ``http.client``, answers read as bytes: the
footing the IMAP side stands on (imaplib, a standard-library client whose FETCH
data is read, not decoded into ENVELOPE and BODYSTRUCTURE structures).

The other JMAP figures use httpx and decode every answer with ``json``: what a
Python client pays, which is more than the IMAP side pays to decode nothing. With
both clients reading bytes, what remains is the servers and the wire. Only the
small answers a client needs to go on (the Session, the inbox's id and count) are
decoded here; Email pages and full messages are checked (an HTTP 200 with no
method error; a method error in JMAP's JSON can only be the text ``["error",``,
since quotes inside strings are escaped) and counted, not decoded. No
compression: the IMAP side does not ask for COMPRESS=DEFLATE either."""

from __future__ import annotations

import base64
import http.client
import json
import time
from typing import Any

from bench.listview import USING
from bench.push import PASSWORD

ERROR = b'["error",'
EMAIL_MARK = b'"threadId":'
"""Once per Email in an answer (a property name; inside strings quotes are escaped)."""


class BytesClient:
    """One keep-alive connection to the JMAP server as user ``bench``."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        token = base64.b64encode(f"bench:{PASSWORD}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    def _read(self, method: str, path: str, body: bytes | None = None) -> bytes:
        self.connection.request(method, path, body=body, headers=self.headers)
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")
        return data

    def session(self) -> dict[str, Any]:
        session: dict[str, Any] = json.loads(self._read("GET", "/jmap/session"))
        return session

    def post(self, calls: list[list[Any]]) -> bytes:
        """The answer as bytes, checked for method errors."""
        body = json.dumps({"using": USING, "methodCalls": calls}).encode()
        data = self._read("POST", "/jmap/api/", body)
        if ERROR in data:
            raise RuntimeError(f"JMAP error in {data[:300]!r}")
        return data

    def post_json(self, calls: list[list[Any]]) -> list[list[Any]]:
        responses: list[list[Any]] = json.loads(self.post(calls))["methodResponses"]
        return responses

    def close(self) -> None:
        self.connection.close()


def initial_sync(port: int, properties: list[str]) -> tuple[int, float, int]:
    """As compare.jmap_initial_sync (Session; Email/query + Email/get pairs of
    maxObjectsInGet, maxCallsInRequest / 2 pairs a request), the inbox's size read
    with its id (Mailbox/get totalEmails) instead of from the pages, which stay
    bytes. Returns (round trips, seconds, Emails counted)."""
    started = time.perf_counter()
    client = BytesClient(port)
    try:
        session = client.session()
        account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        limits = session["capabilities"]["urn:ietf:params:jmap:core"]
        inbox = client.post_json([
            ["Mailbox/query", {"accountId": account, "filter": {"role": "inbox"}}, "m"],
            ["Mailbox/get", {"accountId": account, "properties": ["totalEmails"],
                             "#ids": {"resultOf": "m", "name": "Mailbox/query", "path": "/ids"}},
             "b"],
        ])[1][1]["list"][0]  # fmt: skip
        page, pairs = limits["maxObjectsInGet"], limits["maxCallsInRequest"] // 2
        round_trips, position, seen = 2, 0, 0
        while position < inbox["totalEmails"]:
            calls: list[list[Any]] = []
            for n in range(pairs):
                calls.append(["Email/query", {
                    "accountId": account, "filter": {"inMailbox": inbox["id"]},
                    "sort": [{"property": "receivedAt", "isAscending": False}],
                    "position": position + n * page, "limit": page,
                }, f"q{n}"])  # fmt: skip
                calls.append(["Email/get", {
                    "accountId": account, "properties": properties,
                    "#ids": {"resultOf": f"q{n}", "name": "Email/query", "path": "/ids"},
                }, f"g{n}"])  # fmt: skip
            seen += client.post(calls).count(EMAIL_MARK)
            round_trips += 1
            position += pairs * page
    finally:
        client.close()
    return round_trips, time.perf_counter() - started, seen
