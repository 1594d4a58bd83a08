"""A JMAP Response written while its later calls still run (RFC 8620 §3.4).

An initial sync asks for tens of thousands of Emails in one Request: nine
Email/query + Email/get pairs at 100k. Answered whole, the client waited for the
last Email/get before it read a byte of the first, and the server's second core
idled while the first serialized. Here each Invocation is serialized in the
worker thread as soon as it is final (``Context.emit``), and once FLUSH_BYTES
have gathered they go to the event loop, which sends them (chunked) while the
worker goes on. A Request whose answer stays smaller is answered in one piece,
with a Content-Length, as before. The worker never waits for the client: pieces
queue in memory (the whole answer was held in memory before too), so a slow
reader never holds an account's lock.

What the client reads is the same JSON either way: ``methodResponses`` in order,
then ``createdIds`` if the Request had them, then ``sessionState``, which is
known only once every call has run. An exception that escapes the calls after
the first piece was sent (a bug: a method's errors are Invocations) can no
longer become a 500: the answer is cut short, and the client sees invalid JSON.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse

from maildir_jmap.core.request import Invocation
from maildir_jmap.core.types import JSONObject

log = logging.getLogger(__name__)

FLUSH_BYTES = 1 << 18
"""Serialized Invocations gathered before they are handed to the event loop (one
list view's answer is some 20 KB; an initial sync's Email/get of 5,000 about 2 MB)."""
_HEAD = b'{"methodResponses":['


class StreamedAnswer:
    """Pieces of one Response's JSON, made in the worker thread (``emit``),
    read in the event loop (``response``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pieces: asyncio.Queue[bytes] = asyncio.Queue()
        self._gathered: list[bytes] = []
        self._size = 0
        self._handed = False  # whether a piece went to the loop: then the answer streams
        self._wake: Callable[[], None] = lambda: None  # ends response()'s wait

    def emit(self, invocation: Invocation) -> None:
        """Context.emit, in the worker thread."""
        data = orjson.dumps(list(invocation))
        self._gathered.append(data)
        self._size += len(data)
        if self._size >= FLUSH_BYTES:
            piece = (b"," if self._handed else _HEAD) + b",".join(self._gathered)
            self._gathered, self._size, self._handed = [], 0, True
            self._loop.call_soon_threadsafe(self._hand, piece)

    def _hand(self, piece: bytes) -> None:
        self._pieces.put_nowait(piece)
        self._wake()

    def _rest(self) -> bytes:
        """What was gathered and not handed over (the worker is done)."""
        if not self._gathered:
            return b"" if self._handed else _HEAD
        return (b"," if self._handed else _HEAD) + b",".join(self._gathered)

    async def response(
        self, worker: asyncio.Future[JSONObject], tail: Callable[[JSONObject], bytes]
    ) -> Response:
        """The answer, once ``worker`` (running the calls) is done or a first piece
        is ready; ``tail`` gives what follows the Invocations (``"],...}"``)."""
        if not worker.done() and self._pieces.empty():
            ready = self._loop.create_future()  # one wait, cheap for a small answer

            def wake(_: object = None) -> None:
                if not ready.done():
                    ready.set_result(None)

            worker.add_done_callback(wake)
            self._wake = wake
            await ready
        if self._pieces.empty():
            result = worker.result()  # an exception here is the caller's (a 500)
            return Response(self._rest() + tail(result), media_type="application/json")
        first = asyncio.ensure_future(self._pieces.get())
        return StreamingResponse(self._stream(first, worker, tail), media_type="application/json")

    async def _stream(
        self,
        first: asyncio.Future[bytes],
        worker: asyncio.Future[JSONObject],
        tail: Callable[[JSONObject], bytes],
    ) -> AsyncIterator[bytes]:
        yield await first
        while True:
            piece = asyncio.ensure_future(self._pieces.get())
            await _either(worker, piece)
            if piece.done():
                yield piece.result()
                continue
            piece.cancel()
            break
        try:
            result = worker.result()
        except Exception:
            log.exception("a request failed after its answer had begun")
            return
        while not self._pieces.empty():  # handed before the worker ended
            yield self._pieces.get_nowait()
        yield self._rest() + tail(result)


async def _either(worker: asyncio.Future[JSONObject], piece: asyncio.Future[bytes]) -> None:
    waiting: set[asyncio.Future[Any]] = {worker, piece}
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)


def tail_of(session_state: Callable[[], str]) -> Callable[[JSONObject], bytes]:
    """What follows the Invocations: createdIds (§3.4: only if the Request had
    them) and the sessionState, asked for once every call has run."""

    def tail(result: JSONObject) -> bytes:
        rest: dict[str, Any] = {}
        if "createdIds" in result:
            rest["createdIds"] = result["createdIds"]
        rest["sessionState"] = session_state()
        return b"]," + orjson.dumps(rest)[1:]

    return tail
