"""deploy/nginx.conf as an admin installs it, in front of a real server: Debian's
nginx (the package scripts/test installs) checks it with ``nginx -t`` inside
Debian's own nginx.conf, then serves it on loopback ports, and an EventSource,
a WebSocket, Session URLs, the port-80 redirect and the ACME location are
driven through it (issue 17)."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from maildir_jmap.config import Config
from maildir_jmap.http.app import create_app
from maildir_jmap.users import User, UserDirectory
from tests.conftest import PASSWORDS, LiveServer
from tests.nginx_server import installed, nginx
from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "deploy" / "nginx.conf"
DEBIAN_MAIN = Path("/etc/nginx/nginx.conf")
pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
AUTH = ("alice", PASSWORDS["alice"])


def installed_site(tmp_path: Path, backend: int, http: int | None, https: int | None) -> Path:
    """The shipped site installed (tests/nginx_server.py), the backend's port ours."""
    text = installed(tmp_path, SITE.read_text(), http, https)
    text = text.replace("127.0.0.1:8080", f"127.0.0.1:{backend}")
    site = tmp_path / "site.conf"
    site.write_text(text)
    return site


@pytest.mark.skipif(not DEBIAN_MAIN.exists(), reason="not Debian's nginx layout")
def test_the_shipped_config_passes_nginx_t_in_debians_nginx_conf(tmp_path: Path) -> None:
    site = installed_site(tmp_path, 8080, None, None)
    main = DEBIAN_MAIN.read_text()
    assert "include /etc/nginx/sites-enabled/*;" in main
    main = main.replace("include /etc/nginx/sites-enabled/*;", f"include {site};")
    main = main.replace("pid /run/nginx.pid;", f"pid {tmp_path / 'nginx.pid'};")
    conf = tmp_path / "nginx.conf"
    conf.write_text(main)
    done = subprocess.run(["nginx", "-t", "-c", str(conf)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "[warn]" not in done.stderr, done.stderr


@pytest.fixture
def proxied(tmp_path: Path, maildir: Path, password_hashes: dict[str, str]) -> Iterator[
    tuple[LiveServer, int, int, Path]
]:  # fmt: skip
    users = UserDirectory({"alice": User("alice", maildir, password_hashes["alice"])})
    config = Config(state_dir=tmp_path / "state", watch=False, trusted_proxies=("127.0.0.1",))
    with LiveServer(create_app(config, users)) as live:
        http, https = free_port(), free_port()
        site = installed_site(tmp_path, live.port, http, https)
        with nginx(tmp_path, site, f"http://127.0.0.1:{http}/"):
            yield live, http, https, tmp_path


def test_session_eventsource_and_websocket_through_nginx(
    proxied: tuple[LiveServer, int, int, Path],
) -> None:
    live, _, https, _ = proxied
    base = f"https://127.0.0.1:{https}"
    with httpx.Client(verify=False, auth=AUTH, timeout=10) as client:
        session = client.get(base + "/.well-known/jmap", follow_redirects=True).json()
        # X-Forwarded-Proto and -Host (port included) make the Session's URLs ours.
        assert session["apiUrl"] == base + "/jmap/api/"
        assert session["capabilities"]["urn:ietf:params:jmap:websocket"]["url"] == (
            f"wss://127.0.0.1:{https}/jmap/ws/"
        )
        account = next(iter(session["accounts"]))
        url = base + "/jmap/eventsource/?types=*&closeafter=state&ping=0"
        with client.stream("GET", url) as events:
            assert events.status_code == 200
            lines = events.iter_lines()
            assert next(lines).startswith(":")  # the opening comment, unbuffered
            live.app.state.server.push.hub.publish(account, {"Email": "s-nginx"})
            state = next(line for line in lines if line.startswith("data: "))
        assert json.loads(state[6:])["changed"] == {account: {"Email": "s-nginx"}}
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with connect(
        f"wss://127.0.0.1:{https}/jmap/ws/",
        subprotocols=["jmap"],  # type: ignore[list-item]
        additional_headers={"Authorization": httpx.BasicAuth(*AUTH)._auth_header},
        ssl=context,
    ) as ws:
        ws.send(json.dumps({"@type": "Request", "using": ["urn:ietf:params:jmap:core"],
                            "methodCalls": [["Core/echo", {"via": "nginx"}, "c"]]}))  # fmt: skip
        assert json.loads(ws.recv(timeout=10))["methodResponses"][0][1] == {"via": "nginx"}


def test_port_80_redirects_and_serves_acme_challenges(
    proxied: tuple[LiveServer, int, int, Path],
) -> None:
    _, http, _, tmp_path = proxied
    challenge = tmp_path / "www" / ".well-known" / "acme-challenge"
    challenge.mkdir(parents=True)
    (challenge / "token-1").write_text("token-1.thumbprint")
    answer = httpx.get(f"http://127.0.0.1:{http}/.well-known/acme-challenge/token-1")
    assert answer.status_code == 200
    assert answer.text == "token-1.thumbprint"
    redirect = httpx.get(f"http://127.0.0.1:{http}/.well-known/jmap")
    assert redirect.status_code == 301
    assert redirect.headers["location"] == "https://127.0.0.1/.well-known/jmap"
