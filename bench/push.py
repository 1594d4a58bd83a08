"""Push figures: Dovecot-side change -> EventSource event, and idle listeners' cost.

The server runs as its own process (``python -m maildir_jmap serve``), Dovecot as
another (the test suite's private loopback instance), both on one generated
Maildir; this process is the IMAP client and the JMAP clients.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.generate import generate
from tests.ports import free_port

PASSWORD = "bench-password"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@contextlib.contextmanager
def running_server(argv: list[str], user: str, env: dict[str, str] | None = None) -> Any:
    """Start a server process (``argv`` gets ``--port``-style placeholders filled
    by the caller), wait for its Session, stop it afterwards; yields its URL."""
    port = free_port()
    args = [a.replace("{port}", str(port)) for a in argv]
    said = tempfile.TemporaryFile("w+")  # noqa: SIM115  (closed in the finally below)
    proc = subprocess.Popen(
        args,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=said,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(url + "/jmap/session", auth=(user, PASSWORD)).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                said.seek(0)
                last = [line for line in said.read().splitlines() if line.strip()][-1:]
                raise RuntimeError("the server did not start" + (f" ({last[0]})" if last else ""))
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        said.close()


def _server(maildir: Path, state: Path, user: str = "alice") -> Any:
    """``maildir-jmap serve`` itself, as a user would run it."""
    argv = [sys.executable, "-m", "maildir_jmap", "--log-level", "WARNING", "serve", str(maildir),
            "--port", "{port}", "--user", user, "--state-dir", str(state)]  # fmt: skip
    return running_server(argv, user, {"MAILDIR_JMAP_PASSWORD": PASSWORD})


def push_latency(
    workdir: Path,
    samples: int,
    maildir: Path | None = None,
    state: Path | None = None,
    user: str = "alice",
) -> dict[str, float]:
    """IMAP STORE on Dovecot -> the EventSource ``state`` event, in milliseconds;
    on a fresh 200-message Maildir, or on ``maildir`` with the ``state`` the index
    benchmark built for ``user`` (another user name would index it all again)."""
    from tests.dovecot import Dovecot, available

    reason = available()
    if reason:
        raise RuntimeError(reason)
    tag = maildir.name if maildir is not None else "small"
    if maildir is None:
        maildir = workdir / "push-Maildir"
        generate(maildir, 200, seed=7)
    dovecot = Dovecot(maildir, workdir / f"push-dovecot-{tag}").start()
    latencies: list[float] = []
    stores: list[float] = []
    try:
        with _server(maildir, state or workdir / "push-state", user) as url:
            imap = dovecot.imap()
            imap.select("INBOX")
            arrived = threading.Event()
            opened = threading.Event()
            stop = threading.Event()

            def listen() -> None:
                stream_url = url + "/jmap/eventsource/?types=*&closeafter=no&ping=0"
                auth = (user, PASSWORD)
                # The server ends the stream when it shuts down at the end of the run.
                with (
                    contextlib.suppress(httpx.TransportError),
                    httpx.stream("GET", stream_url, auth=auth, timeout=None) as r,
                ):
                    opened.set()
                    for line in r.iter_lines():
                        if line.startswith("event: state"):
                            arrived.set()
                        if stop.is_set():
                            return

            threading.Thread(target=listen, daemon=True).start()
            if not opened.wait(60):
                raise RuntimeError("the event stream did not open")
            time.sleep(1.0)  # the server has subscribed the stream to the hub
            for n in range(samples):
                arrived.clear()
                started = time.perf_counter()
                imap.store("1", "+FLAGS" if n % 2 == 0 else "-FLAGS", r"(\Flagged)")
                stores.append((time.perf_counter() - started) * 1000)
                if not arrived.wait(10):
                    raise RuntimeError("no push arrived")
                latencies.append((time.perf_counter() - started) * 1000)
                time.sleep(0.1)  # let the debounce window close before the next change
            stop.set()
            imap.logout()
    finally:
        dovecot.stop()
    return {
        "push_p50_ms": statistics.median(latencies),
        "push_p95_ms": _percentile(latencies, 0.95),
        "store_p50_ms": statistics.median(stores),
    }


def _open_listeners(url: str, count: int) -> list[socket.socket]:
    import base64

    auth = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    host, port = url.removeprefix("http://").split(":")
    request = (
        "GET /jmap/eventsource/?types=*&closeafter=no&ping=300 HTTP/1.1\r\n"
        f"Host: {host}\r\nAuthorization: Basic {auth}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    sockets = []
    for _ in range(count):
        s = socket.create_connection((host, int(port)))
        s.sendall(request)
        sockets.append(s)
    for s in sockets:  # wait until each stream is open (its headers arrived)
        s.settimeout(30)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("a listener was refused")
            data += chunk
    return sockets


def _request_latencies(url: str, count: int) -> list[float]:
    body = {"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {"x": 1}, "c"]]}
    times = []
    with httpx.Client(auth=("alice", PASSWORD)) as client:
        for _ in range(count):
            started = time.perf_counter()
            client.post(url + "/jmap/api/", json=body).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return times


def idle_listeners(workdir: Path, listeners: int, requests: int) -> dict[str, float]:
    """API latency with no listeners, then with ``listeners`` idle EventSource streams."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, listeners * 2 + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    maildir = workdir / "listen-Maildir"
    generate(maildir, 100, seed=9)
    with _server(maildir, workdir / "listen-state") as url:
        _request_latencies(url, 20)  # warm up
        quiet = _request_latencies(url, requests)
        sockets = _open_listeners(url, listeners)
        try:
            busy = _request_latencies(url, requests)
        finally:
            for s in sockets:
                s.close()
    return {
        "listeners": float(listeners),
        "api_p50_quiet_ms": statistics.median(quiet),
        "api_p95_quiet_ms": _percentile(quiet, 0.95),
        "api_p50_listeners_ms": statistics.median(busy),
        "api_p95_listeners_ms": _percentile(busy, 0.95),
    }
