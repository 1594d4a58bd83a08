"""Delivering pushes to PushSubscription URLs (RFC 8620 §7.2, RFC 8030/8291/8292).

Theory of operation. ``WebPush`` runs on the server's event loop. It listens to
the hub for every account and to the subscription store. A new, unverified
subscription gets one PushVerification POST (retried briefly); nothing else is
sent to it until the client has set the code (§7.2). For verified ones each
StateChange is filtered by the subscription's ``types`` and merged into that
subscription's pending TypeState, which one task per subscription sends: newer
states overwrite older ones, so a slow or failing endpoint receives one
coalesced push instead of a backlog. Failures back off exponentially (1 s to
10 min) and a pending push is dropped after ``MAX_ATTEMPTS`` (pushes may be
lost, §7: the next /changes catches up); 429 also widens the minimum interval
between pushes (§7.2 MUST); 404/410 mean the push service forgot the
subscription (RFC 8030 §7.3), so it is destroyed.

SSRF: the URL's host is resolved here, every address must be public unless the
config allows private targets, and the connection goes to the checked address
(SNI and Host keep the name), so a name cannot resolve differently between the
check and the connection. Redirects are not followed; response bodies are not
read.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric import ec

from maildir_jmap.sync.ece import encrypt, vapid_authorization
from maildir_jmap.sync.hub import Hub, Listener, state_change
from maildir_jmap.sync.subscriptions import Subscription, SubscriptionStore

log = logging.getLogger(__name__)

TTL = 12 * 3600
"""RFC 8030 §5.2: how long a push service may hold a push for an offline device."""
TIMEOUT = 10.0
MAX_ATTEMPTS = 6
MAX_BACKOFF = 600.0
MAX_INTERVAL = 300.0
VERIFY_ATTEMPTS = 3
PRUNE_EVERY = 60.0

TypeStates = dict[str, dict[str, str]]


class RefusedTarget(Exception):
    """The URL resolves to an address we do not POST to."""


@dataclass
class _Target:
    pending: TypeStates = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    failures: int = 0
    interval: float = 0.0
    not_before: float = 0.0


def _merge(older: TypeStates, newer: Mapping[str, Mapping[str, str]]) -> TypeStates:
    merged = {account: dict(states) for account, states in older.items()}
    for account, states in newer.items():
        merged.setdefault(account, {}).update(states)
    return merged


class WebPush:
    def __init__(
        self,
        store: SubscriptionStore,
        hub: Hub,
        key: ec.EllipticCurvePrivateKey,
        subject: str,
        owner_of: Callable[[str], str | None],
        *,
        allow_private: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.hub = hub
        self.key = key
        self.subject = subject
        self.owner_of = owner_of
        self.allow_private = allow_private
        self.clock = clock
        self._targets: dict[str, _Target] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: Listener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self.sent = 0
        """Pushes accepted by their endpoints (for metrics and tests)."""

    # -- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(
            timeout=TIMEOUT, follow_redirects=False, trust_env=False, http2=False
        )
        self._listener = self.hub.subscribe_all()
        self.store.on_change.append(self._store_changed)
        self._spawn(self._pump())
        self._spawn(self._prune_periodically())
        for sub in self.store.all():
            if not sub.verified:  # made before a restart, verification maybe lost
                self._spawn(self._verify(sub))

    async def stop(self) -> None:
        if self._listener is not None:
            self.hub.unsubscribe(self._listener)
        with contextlib.suppress(ValueError):
            self.store.on_change.remove(self._store_changed)
        tasks = list(self._tasks) + [t.task for t in self._targets.values() if t.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._targets.clear()
        if self._client is not None:
            await self._client.aclose()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- events -----------------------------------------------------------------

    def _store_changed(self, sub: Subscription | None, sub_id: str) -> None:
        """From any thread: a created subscription gets its PushVerification; a
        destroyed one loses whatever was pending."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if sub is None:
            loop.call_soon_threadsafe(self._forget, sub_id)
        elif sub.client_code is None:
            loop.call_soon_threadsafe(lambda: self._spawn(self._verify(sub)))

    def _forget(self, sub_id: str) -> None:
        target = self._targets.pop(sub_id, None)
        if target is not None and target.task is not None:
            target.task.cancel()

    async def _pump(self) -> None:
        assert self._listener is not None
        while True:
            changed = await self._listener.queue.get()
            now = self.clock()
            for account_id, states in changed.items():
                owner = self.owner_of(account_id)
                for sub in self.store.all():
                    if sub.user != owner or not sub.verified or sub.expires <= now:
                        continue
                    kept = {t: s for t, s in states.items() if sub.types is None or t in sub.types}
                    if kept:
                        self._offer(sub.id, {account_id: kept})

    def _offer(self, sub_id: str, changed: TypeStates) -> None:
        target = self._targets.setdefault(sub_id, _Target())
        target.pending = _merge(target.pending, changed)
        if target.task is None or target.task.done():
            target.task = asyncio.ensure_future(self._deliver(sub_id, target))

    async def _prune_periodically(self) -> None:
        while True:
            await asyncio.to_thread(self.store.prune, self.clock())
            await asyncio.sleep(PRUNE_EVERY)

    # -- sending ----------------------------------------------------------------

    async def _verify(self, sub: Subscription) -> None:
        body = {
            "@type": "PushVerification",
            "pushSubscriptionId": sub.id,
            "verificationCode": sub.server_code,
        }
        for attempt in range(VERIFY_ATTEMPTS):
            current = self.store.get(sub.id)
            if current is None or current.verified:
                return
            status = await self._post(sub, body, urgency="high")
            if status is not None and 200 <= status < 300:
                return
            if status in (404, 410):
                break
            await asyncio.sleep(2.0**attempt)
        log.warning("push subscription %s: PushVerification was not accepted", sub.id)

    async def _deliver(self, sub_id: str, target: _Target) -> None:
        while target.pending:
            delay = target.not_before - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sub = self.store.get(sub_id)
            if sub is None or not sub.verified or sub.expires <= self.clock():
                self._targets.pop(sub_id, None)
                return
            payload, target.pending = target.pending, {}
            urgency = "high" if any("EmailDelivery" in s for s in payload.values()) else "normal"
            status = await self._post(sub, state_change(payload), urgency=urgency, topic=True)
            now = time.monotonic()
            if status is not None and 200 <= status < 300:
                self.sent += 1
                target.failures = 0
                target.not_before = now + target.interval
            elif status in (404, 410):
                log.info("push subscription %s is gone at its push service", sub_id)
                await asyncio.to_thread(self.store.destroy, sub_id)
                return
            elif status == 429:
                target.interval = min(max(target.interval * 2, 1.0), MAX_INTERVAL)
                target.not_before = now + target.interval
                target.pending = _merge(payload, target.pending)
            else:
                target.failures += 1
                if target.failures >= MAX_ATTEMPTS:
                    log.warning(
                        "push subscription %s: dropping a push after %d attempts",
                        sub_id,
                        target.failures,
                    )
                    target.failures = 0
                else:
                    target.pending = _merge(payload, target.pending)
                target.not_before = now + min(2.0 ** (target.failures - 1), MAX_BACKOFF)

    async def _post(
        self, sub: Subscription, message: object, *, urgency: str, topic: bool = False
    ) -> int | None:
        """POST ``message`` to the subscription; the HTTP status, or None when no
        answer came (network error, timeout, refused address)."""
        assert self._client is not None
        body = orjson.dumps(message)
        headers = {"Content-Type": "application/json", "TTL": str(TTL), "Urgency": urgency}
        if topic:
            headers["Topic"] = "JMAPStateChange"  # RFC 8030 §5.4: replaces an undelivered one
        if sub.keys is not None:
            body = encrypt(body, sub.keys["p256dh"], sub.keys["auth"])
            headers["Content-Encoding"] = "aes128gcm"
        headers["Authorization"] = vapid_authorization(self.key, sub.url, self.subject)
        try:
            url, host_header, extensions = await self._pin(sub.url)
            headers["Host"] = host_header
            async with self._client.stream(
                "POST", url, content=body, headers=headers, extensions=extensions
            ) as response:
                return response.status_code
        except RefusedTarget as exc:
            log.warning("push subscription %s: %s", sub.id, exc)
        except (httpx.HTTPError, OSError) as exc:
            log.info("push subscription %s: %s", sub.id, exc.__class__.__name__)
        return None

    async def _pin(self, raw_url: str) -> tuple[httpx.URL, str, dict[str, object]]:
        """Resolve the URL's host once, check every address, and aim at the first."""
        url = httpx.URL(raw_url)
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            assert self._loop is not None
            infos = await self._loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = list(dict.fromkeys(ipaddress.ip_address(i[4][0]) for i in infos))
        if not addresses:
            raise RefusedTarget(f"{host} has no address")
        if not self.allow_private:
            bad = [a for a in addresses if not a.is_global]
            if bad:
                raise RefusedTarget(f"{host} resolves to a non-public address ({bad[0]})")
        host_header = url.netloc.decode("ascii").rpartition("@")[2]
        extensions: dict[str, object] = {}
        if url.scheme == "https":
            extensions["sni_hostname"] = host
        return url.copy_with(host=str(addresses[0])), host_header, extensions
