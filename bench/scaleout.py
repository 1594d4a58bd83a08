"""Scale-out throughput (issue 20): ``clients`` concurrent keep-alive clients spread
over ``users`` accounts, all through a real nginx running deploy/nginx-backends.conf
(plain HTTP here: TLS would cost both sides alike), against one backend and against
one backend per core on this host, each user pinned by the route lookup.

Each client loops 80 % list views at random positions and 20 % flag toggles, like
the one-account throughput figure; every request also costs nginx's auth_request
subrequest (GET /jmap/route) on some backend. Accounts are opened and indexed
before the clock starts. ``python -m bench.scaleout [clients users seconds]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.compare import _client, timed_clients
from bench.generate import generate
from bench.listview import USING
from bench.push import PASSWORD, running_server
from bench.wrk import run_wrk
from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
MESSAGES_PER_USER = 300
SERVER = r"""
import sys, uvicorn
from pathlib import Path
from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CoreLimits
from maildir_jmap.http.app import create_app
from maildir_jmap.server.registry import build_registry
from maildir_jmap.users import User, UserDirectory, hash_password
state, port, password, backends, users = sys.argv[1:6]
digest = hash_password(password)
pairs = [u.split("=", 1) for u in users.split(",")]
directory = UserDirectory({n: User(n, Path(m), digest) for n, m in pairs})
config = Config(state_dir=Path(state), watch=False, limits=CoreLimits(maxConcurrentRequests=64),
                route_backends=tuple(backends.split(",")), trusted_proxies=("127.0.0.1",))
app = create_app(config, directory, registry=build_registry())
uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning")
"""


def site(backends: list[str], port: int) -> str:
    """The shipped file as an admin would install it for plain HTTP on ``port``."""
    text = (ROOT / "deploy" / "nginx-backends.conf").read_text()
    first = text.index("server {")
    second = text.index("server {", first + 1)
    text = text[:first] + text[second:]  # no port-80 redirect server
    servers = "".join(f"    server {b};\n" for b in backends)
    text = text.replace("    server 10.0.0.11:8080;\n    server 10.0.0.12:8080;\n", servers)
    lines = [
        line for line in text.splitlines() if not line.strip().startswith(("ssl_", "listen [::]"))
    ]
    text = "\n".join(lines).replace("listen 443 ssl;", f"listen 127.0.0.1:{port};")
    proxy = ROOT / "deploy" / "maildir-jmap-proxy.conf"
    return text.replace("/etc/nginx/maildir-jmap-proxy.conf", str(proxy))


@contextlib.contextmanager
def nginx(work: Path, backends: list[str]) -> Iterator[str]:
    port = free_port()
    (work / "site.conf").write_text(site(backends, port))
    temp = work / "temp"
    temp.mkdir(exist_ok=True)
    conf = work / "nginx.conf"
    conf.write_text(
        f"daemon off;\nuser root;\nworker_processes 1;\npid {work / 'nginx.pid'};\n"
        f"error_log {work / 'error.log'};\nevents {{ worker_connections 4096; }}\nhttp {{\n"
        f"  access_log off;\n  client_body_temp_path {temp};\n  proxy_temp_path {temp};\n"
        f"  fastcgi_temp_path {temp};\n  uwsgi_temp_path {temp};\n  scgi_temp_path {temp};\n"
        f"  include {work / 'site.conf'};\n}}\n"
    )
    process = subprocess.Popen(["nginx", "-p", str(work), "-c", str(conf)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((work / "error.log").read_text()) from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def backends(work: Path, count: int, users: dict[str, Path]) -> Iterator[list[str]]:
    ports = [free_port() for _ in range(count)]
    listed = ",".join(f"127.0.0.1:{p}" for p in ports)
    spec = ",".join(f"{name}={path}" for name, path in users.items())
    with contextlib.ExitStack() as stack:
        for n, port in enumerate(ports):
            argv = [sys.executable, "-c", SERVER, str(work / f"state-{count}-{n}"), str(port),
                    PASSWORD, listed, spec]  # fmt: skip
            stack.enter_context(_on_port(argv, port))
        yield listed.split(",")


@contextlib.contextmanager
def _on_port(argv: list[str], port: int) -> Iterator[None]:
    import bench.push as push

    original = push.free_port
    push.free_port = lambda: port  # running_server picks the port; ours is fixed
    try:
        with running_server(argv, "u00"):
            push.free_port = original
            yield
    finally:
        push.free_port = original


def _prepare(client: httpx.Client, url: str, login: str) -> tuple[str, str, list[str]]:
    """Open (and index) the user's account through nginx; its account, inbox, ids."""
    auth = (login, PASSWORD)

    def call(method: str, args: dict[str, Any]) -> dict[str, Any]:
        body = {"using": USING, "methodCalls": [[method, args, "c"]]}
        answer = client.post(url + "/jmap/api/", json=body, auth=auth, timeout=600)
        result: dict[str, Any] = answer.json()["methodResponses"][0][1]
        return result

    session = client.get(url + "/jmap/session", auth=auth, timeout=600).json()
    account = next(iter(session["accounts"]))
    inbox = call("Mailbox/query", {"accountId": account, "filter": {"role": "inbox"}})["ids"][0]
    query = {"accountId": account, "filter": {"inMailbox": inbox}, "limit": 1000}
    return account, inbox, call("Email/query", query)["ids"]


def run(url: str, logins: list[str], clients: int, seconds: float) -> dict[str, float]:
    with httpx.Client() as client:
        prepared = {login: _prepare(client, url, login) for login in logins}
    if shutil.which("wrk"):
        return run_wrk(url, prepared, clients, seconds, reads=0.8)

    async def all_clients() -> list[tuple[list[float], list[float], int]]:
        until = time.perf_counter() + seconds
        tasks = []
        for n in range(clients):
            login = logins[n % len(logins)]
            account, inbox, ids = prepared[login]
            tasks.append(_client(url, account, inbox, ids, until, n, auth=(login, PASSWORD)))
        return await asyncio.gather(*tasks)

    return timed_clients(all_clients)


def scaleout(
    work: Path, clients: int = 200, users: int = 20, seconds: float = 20
) -> dict[str, Any]:
    """Throughput through nginx with one backend, then one backend per core."""
    maildirs = {}
    for n in range(users):
        maildirs[f"u{n:02d}"] = work / f"Maildir-{n:02d}"
        generate(maildirs[f"u{n:02d}"], MESSAGES_PER_USER, seed=n)
    cores = os.cpu_count() or 1
    out: dict[str, Any] = {"clients": clients, "users": users, "cores": cores}
    for count in sorted({1, cores}):
        (work / f"nginx-{count}").mkdir()
        with (
            backends(work, count, maildirs) as listed,
            nginx(work / f"nginx-{count}", listed) as url,
        ):
            out[f"backends_{count}"] = run(url, list(maildirs), clients, seconds)
    return out


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:4]]
    with tempfile.TemporaryDirectory() as directory:
        print(scaleout(Path(directory), *args))
