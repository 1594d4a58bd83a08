"""Backends on hosts of their own (issue 20): two network namespaces, each with a
veth link to this one and a backend process listening on its own address, a real
Dovecot (tests/deployment.py) whose passdb pins carol with ``host=``/``port=``, and
Debian's nginx in front running deploy/nginx-backends.conf. Account state lives in
the users' homes (``mail.account_state``), so a move takes it along; the homes and
Maildirs are one tree here, as an NFS mount would make them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from maildir_jmap.core.capabilities import CORE, MAIL
from maildir_jmap.server.routing import Routing
from maildir_jmap.store.owner import LOCK_NAME
from tests.deployment import USERS, Deployment, available
from tests.nginx_server import installed, nginx, websocket_echo
from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
PINNED = "carol@example.net"
PORT = 8080  # the same port on every "host": they are told apart by address
BACKEND = r"""
import sys, uvicorn
from pathlib import Path
from maildir_jmap import config_file, dovecot_config, serve
from maildir_jmap.http.app import create_app
config = config_file.load(Path(sys.argv[1]))
read = dovecot_config.read(config.dovecot_config)
users = serve.users_for(config, lambda: sys.exit("not embedded"), read)
app = create_app(config, users, dovecot=read)
uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
"""


def netns_missing() -> str | None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "needs root and iproute2"
    probe = f"mjprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns does not work here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return None


pytestmark = [
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
    pytest.mark.skipif(available() is not None, reason=str(available())),
    pytest.mark.skipif(netns_missing() is not None, reason=str(netns_missing())),
]


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Host:
    """A network namespace joined to this one by a veth pair on 10.201.<n>.0/24."""

    n: int
    name: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = f"mj{os.getpid() % 100000}h{self.n}"

    @property
    def address(self) -> str:
        return f"10.201.{self.n}.2"

    @property
    def gateway(self) -> str:
        return f"10.201.{self.n}.1"

    def create(self) -> None:
        outside, inside = f"{self.name}o", f"{self.name}i"
        ip("netns", "add", self.name)
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", self.name)
        ip("addr", "add", f"{self.gateway}/24", "dev", outside)
        ip("link", "set", outside, "up")
        for args in (("addr", "add", f"{self.address}/24", "dev", inside),
                     ("link", "set", inside, "up"), ("link", "set", "lo", "up")):  # fmt: skip
            ip("netns", "exec", self.name, "ip", *args)

    def destroy(self) -> None:
        self.stop()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", f"{self.name}o"], capture_output=True, check=False)

    def serve(self, conf: Path, port: int = PORT) -> subprocess.Popen[bytes]:
        """A backend process inside this namespace; returns once it answers."""
        log = (conf.parent / f"{conf.stem}.log").open("ab")
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.name, sys.executable, "-c", BACKEND, str(conf)],
            cwd=ROOT, stdout=log, stderr=log,
        )  # fmt: skip
        log.close()
        self.processes.append(process)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://{self.address}:{port}/healthz", timeout=1)
                return process
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError((conf.parent / f"{conf.stem}.log").read_text()) from None
                time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def backend_config(root: Path, host: Host, hosts: list[Host], dovecot: Deployment,
                   name: str, port: int = PORT) -> Path:  # fmt: skip
    backends = ", ".join(f'"{h.address}:{PORT}"' for h in hosts)
    conf = root / f"{name}.toml"
    conf.write_text(
        f'[server]\nhost = "{host.address}"\nport = {port}\nstate_dir = "{root / name}"\n'
        f'trusted_proxies = ["{host.gateway}"]\n'
        f'[auth]\nbackend = "dovecot"\n'
        f'[mail]\ndovecot_config = "{dovecot.conf}"\nwatch = false\n'
        f'account_state = "{{home}}/.maildir-jmap"\n'
        f"[route]\nbackends = [{backends}]\n"
    )
    return conf


@dataclass
class Site:
    dovecot: Deployment
    hosts: list[Host]
    confs: list[Path]
    base: str

    def auth(self, login: str) -> tuple[str, str]:
        return login, self.dovecot.password(login)

    def owner_pid(self, login: str) -> int | None:
        """The pid holding the user's owner lock in their home, if any."""
        text = (self.dovecot.home(login) / ".maildir-jmap" / LOCK_NAME).read_text()
        return int(text.split()[1]) if text.startswith("pid ") else None

    def pid_of(self, n: int) -> int:
        return self.hosts[n].processes[0].pid

    def call(self, client: httpx.Client, login: str, name: str, **args: Any) -> dict[str, Any]:
        session = client.get("/jmap/session", auth=self.auth(login))
        assert session.status_code == 200, session.text
        account = session.json()["primaryAccounts"][MAIL]
        body = {"using": [CORE, MAIL], "methodCalls": [[name, {"accountId": account, **args}, "c"]]}
        answer = client.post("/jmap/api/", json=body, auth=self.auth(login))
        ((method, result, _),) = answer.json()["methodResponses"]
        assert method == name, result
        out: dict[str, Any] = result
        return out


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    hosts = [Host(1), Host(2)]
    backends = tuple(f"{h.address}:{PORT}" for h in hosts)
    hashed = Routing(backends, PORT).hashed(PINNED)
    pinned = next(h for h in hosts if f"{h.address}:{PORT}" != hashed)
    dovecot = Deployment(tmp_path / "dc", routes={PINNED: f"host={pinned.address} port={PORT}"})
    try:
        for host in hosts:
            host.create()
        dovecot.start()
        confs = [backend_config(tmp_path, h, hosts, dovecot, f"b{h.n}") for h in hosts]
        for host, conf in zip(hosts, confs, strict=True):
            host.serve(conf)
        https, http = free_port(), free_port()
        text = installed(
            tmp_path, (ROOT / "deploy" / "nginx-backends.conf").read_text(), http, https
        )
        text = text.replace("    server 10.0.0.11:8080;\n    server 10.0.0.12:8080;\n",
                            "".join(f"    server {b};\n" for b in backends))  # fmt: skip
        (tmp_path / "site.conf").write_text(text)
        with nginx(tmp_path, tmp_path / "site.conf", f"http://127.0.0.1:{http}/"):
            yield Site(dovecot, hosts, confs, f"https://127.0.0.1:{https}")
    finally:
        for host in hosts:
            host.destroy()
        dovecot.stop()


def test_users_stay_on_their_host_a_second_owner_is_refused_and_a_move_resyncs(
    site: Site, tmp_path: Path
) -> None:
    backends = tuple(f"{h.address}:{PORT}" for h in site.hosts)
    expected = {u.login: Routing(backends, PORT).hashed(u.login) for u in USERS}
    expected[PINNED] = next(b for b in backends if b != Routing(backends, PORT).hashed(PINNED))
    with httpx.Client(base_url=site.base, verify=False, timeout=30) as client:
        states = {
            u.login: site.call(client, u.login, "Mailbox/get", ids=None)["state"] for u in USERS
        }
        url = "/jmap/eventsource/?types=*&closeafter=state&ping=0"
        with client.stream("GET", url, auth=site.auth(PINNED)) as stream:
            assert stream.status_code == 200
    assert websocket_echo(site.base, *site.auth(PINNED)) == [["Core/echo", {"via": "ws"}, "c"]]
    for login, backend in expected.items():
        n = backends.index(backend)
        assert site.owner_pid(login) == site.pid_of(n), login  # served there, and only there

    # A second backend on host 1 sharing the homes: every user the first owns is refused.
    intruder = backend_config(tmp_path, site.hosts[0], site.hosts, site.dovecot, "b3", PORT + 1)
    site.hosts[0].serve(intruder, PORT + 1)
    owned_by_one = next(login for login, b in expected.items() if b == backends[0])
    refused = httpx.get(
        f"http://{site.hosts[0].address}:{PORT + 1}/jmap/session", auth=site.auth(owned_by_one)
    )
    assert refused.status_code == 503
    assert refused.headers["retry-after"]

    # carol moves to the other host: the passdb says so, both backends restart.
    with httpx.Client(base_url=site.base, verify=False, timeout=30) as client:
        made = site.call(client, PINNED, "Mailbox/set", create={"m": {"name": "Before the move"}})
    assert made["created"]
    old = backends.index(expected[PINNED])
    new = 1 - old
    for host in site.hosts:
        host.stop()
    site.dovecot.reroute(PINNED, f"host={site.hosts[new].address} port={PORT}")
    for host, conf in zip(site.hosts, site.confs, strict=True):
        host.serve(conf)
    with httpx.Client(base_url=site.base, verify=False, timeout=30) as client:
        changes = site.call(client, PINNED, "Mailbox/changes", sinceState=states[PINNED])
    assert changes["created"] == [made["created"]["m"]["id"]]  # its change log moved along
    assert site.owner_pid(PINNED) == site.pid_of(new)
