"""Users pinned to backends behind nginx (issue 20): a real Dovecot (virtual users,
tests/deployment.py) whose passdb gives carol ``host=``/``port=``, two backends on
their own loopback addresses (127.0.0.2 and 127.0.0.3), and Debian's nginx running
the shipped deploy/nginx-backends.conf with ``auth_request`` against /jmap/route.
Each user's Session, API calls, EventSource and WebSocket must reach only the
backend that serves them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from maildir_jmap import dovecot_config, serve
from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CORE
from maildir_jmap.http.app import create_app
from maildir_jmap.server.routing import Routing
from tests.conftest import LiveServer
from tests.deployment import USERS, Deployment, available
from tests.nginx_server import installed, nginx, websocket_echo
from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "deploy" / "nginx-backends.conf"
HOSTS = ("127.0.0.2", "127.0.0.3")
PINNED = "carol@example.net"
pytestmark = [
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
    pytest.mark.skipif(available() is not None, reason=str(available())),
]


@dataclass
class Cluster:
    dovecot: Deployment
    backends: dict[str, LiveServer]
    """HOST:PORT -> the backend listening there."""
    base: str
    """nginx's HTTPS URL."""
    pinned: str
    """Where the passdb's host=/port= sends carol (never where the hash would)."""

    def auth(self, login: str) -> tuple[str, str]:
        return login, self.dovecot.password(login)

    def open_on(self) -> dict[str, set[str]]:
        """Which users each backend has an account open for."""
        return {
            where: {a.username for a in live.app.state.server.pool.open_accounts()}
            for where, live in self.backends.items()
        }


def site_for(tmp_path: Path, backends: list[str], https: int, http: int) -> Path:
    text = installed(tmp_path, SITE.read_text(), http, https)
    text = text.replace(
        "    server 10.0.0.11:8080;\n    server 10.0.0.12:8080;\n",
        "".join(f"    server {b};\n" for b in backends),
    )
    site = tmp_path / "backends.conf"
    site.write_text(text)
    return site


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    # The hash depends on the backends' ports, drawn at random: draw until the four
    # users spread over both (one draw in eight put all four on one backend).
    for _ in range(100):
        ports = [free_port() for _ in HOSTS]
        backends = [f"{host}:{port}" for host, port in zip(HOSTS, ports, strict=True)]
        routing = Routing(tuple(backends), 8080)
        # carol is pinned by Dovecot's passdb to the backend the hash would not pick.
        hashed = routing.hashed(PINNED)
        pinned = next(b for b in backends if b != hashed)
        others = {routing.hashed(u.login) for u in USERS if u.login != PINNED}
        if others != {pinned}:
            break
    else:
        raise AssertionError("100 draws of ports never spread the users over both backends")
    pin_host, pin_port = pinned.split(":")
    routes = {PINNED: f"host={pin_host} port={pin_port}"}
    dovecot = Deployment(tmp_path / "site", routes=routes).start()
    lives: dict[str, LiveServer] = {}
    try:
        for n, (host, port) in enumerate(zip(HOSTS, ports, strict=True)):
            config = Config(
                state_dir=tmp_path / f"state-{n}",
                host=host,
                port=port,
                auth_backend="dovecot",
                dovecot_config=dovecot.conf,
                trusted_proxies=("127.0.0.1",),
                route_backends=tuple(backends),
                watch=False,
            )
            read = dovecot_config.read(dovecot.conf)
            users = serve.users_for(config, lambda: pytest.fail("not embedded"), read)
            live = LiveServer(create_app(config, users, dovecot=read), host=host, port=port)
            lives[f"{host}:{port}"] = live.__enter__()
        https, http = free_port(), free_port()
        site = site_for(tmp_path, backends, https, http)
        with nginx(tmp_path, site, f"http://127.0.0.1:{http}/"):
            yield Cluster(dovecot, lives, f"https://127.0.0.1:{https}", pinned)
    finally:
        for live in lives.values():
            live.__exit__(None, None, None)
        dovecot.stop()


def expected_backend(cluster: Cluster, login: str) -> str:
    if login == PINNED:
        return cluster.pinned
    hashed = Routing(tuple(cluster.backends), 8080).hashed(login)
    assert hashed is not None
    return hashed


def test_each_users_traffic_reaches_only_their_backend(cluster: Cluster) -> None:
    logins = [u.login for u in USERS]
    where = {login: expected_backend(cluster, login) for login in logins}
    assert len(set(where.values())) == 2  # the four users do spread over both
    with httpx.Client(base_url=cluster.base, verify=False, timeout=20) as client:
        assert client.get("/.well-known/jmap").status_code == 401  # no credentials: nginx's 401
        wrong = client.get("/jmap/session", auth=(PINNED, "wrong"))
        assert wrong.status_code == 401
        for login in logins:
            session = client.get("/.well-known/jmap", auth=cluster.auth(login))
            assert session.status_code == 200, session.text
            assert session.json()["apiUrl"] == cluster.base + "/jmap/api/"  # public URLs
            account = next(iter(session.json()["accounts"]))
            body = {
                "using": [CORE, "urn:ietf:params:jmap:mail"],
                "methodCalls": [["Mailbox/get", {"accountId": account, "ids": None}, "0"]],
            }
            answer = client.post("/jmap/api/", json=body, auth=cluster.auth(login))
            assert answer.json()["methodResponses"][0][0] == "Mailbox/get", answer.text
            url = "/jmap/eventsource/?types=*&closeafter=state&ping=0"
            with client.stream("GET", url, auth=cluster.auth(login)) as events:
                assert events.status_code == 200
                assert "text/event-stream" in events.headers["content-type"]
    opened = cluster.open_on()
    for login in logins:
        assert {b for b, users in opened.items() if login in users} == {where[login]}


def test_the_websocket_goes_to_the_users_backend(cluster: Cluster) -> None:
    echoed = websocket_echo(cluster.base, *cluster.auth(PINNED))
    assert echoed == [["Core/echo", {"via": "ws"}, "c"]]
    opened = cluster.open_on()
    assert {b for b, users in opened.items() if PINNED in users} == {
        expected_backend(cluster, PINNED)
    }
