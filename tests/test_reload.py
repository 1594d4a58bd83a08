"""Issue 17: SIGHUP (``systemctl reload``) reloads without dropping connections.
A real ``serve --config`` process over HTTPS, an EventSource and a WebSocket
kept open across the reload; the users file, the TLS certificate, the log level
and a throttle limit change, and a setting that needs a restart is named."""

from __future__ import annotations

import json
import signal
import ssl
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

from maildir_jmap.users import User, hash_password, load_users_file, save_users_file
from tests.test_systemd import served
from tests.tls import self_signed


def presented_certificate(port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    import socket

    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw) as tls,
    ):
        certificate = tls.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


def test_sighup_reloads_with_streams_open(tmp_path: Path) -> None:
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    cert, key = self_signed(tls_dir)
    settings = f'tls_cert = "{cert}"\ntls_key = "{key}"\nlog_level = "INFO"\n'
    with served(tmp_path, settings, env={"MAILDIR_JMAP_PASSWORD": ""}) as server:
        assert "READY=1" in server.notifications.recv(4096).decode().splitlines()
        base = f"https://127.0.0.1:{server.port}"
        before = presented_certificate(server.port)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with (
            httpx.Client(verify=False, auth=("alice", "pw"), timeout=30) as client,
            client.stream("GET", base + "/jmap/eventsource/?types=*&closeafter=no&ping=1") as es,
            connect(
                f"wss://127.0.0.1:{server.port}/jmap/ws/",
                subprotocols=["jmap"],  # type: ignore[list-item]
                additional_headers={"Authorization": "Basic YWxpY2U6cHc="},
                ssl=context,
            ) as ws,
        ):
            lines = es.iter_lines()
            assert next(line for line in lines if line.startswith("event: ping"))
            # What an admin changes: a user, the certificate (renewed in place),
            # the log level, a limit; and the port, which needs a restart.
            users_file = tmp_path / "users.toml"
            users = load_users_file(users_file)
            users["bob"] = User("bob", users["alice"].maildir, hash_password("bob-pw"))
            save_users_file(users_file, users)
            self_signed(tls_dir)
            config = tmp_path / "config.toml"
            text = config.read_text().replace('log_level = "INFO"', 'log_level = "DEBUG"')
            text = text.replace("[auth]\n", "[auth]\nmax_failures_per_address = 7\n")
            config.write_text(text.replace(f"port = {server.port}", "port = 1"))
            server.process.send_signal(signal.SIGHUP)
            said = server.wait_for("reloaded:")
            notified = server.notifications.recv(4096).decode().splitlines()
            assert any(n.startswith("RELOADING=1") for n in notified)
            assert "TLS certificate" in said
            assert "users file" in said
            assert "server.log_level" in said
            assert "auth.max_failures_per_address" in said
            assert "port" in server.wait_for("applied at the next restart")
            # Still the same process, the streams still open and answering.
            assert server.process.poll() is None
            assert next(line for line in lines if line.startswith("event: ping"))
            ws.send(json.dumps({"@type": "Request", "using": ["urn:ietf:params:jmap:core"],
                                "methodCalls": [["Core/echo", {"x": 1}, "c"]]}))  # fmt: skip
            assert json.loads(ws.recv(timeout=10))["methodResponses"][0][1] == {"x": 1}
            # The reloaded settings apply to new work.
            assert client.get(base + "/jmap/session", auth=("bob", "bob-pw")).status_code == 200
            assert presented_certificate(server.port) != before
        time.sleep(0.2)
        assert any("DEBUG" in line for line in server.lines)


def test_a_reload_with_bad_settings_keeps_the_running_ones(tmp_path: Path) -> None:
    """A mistake in the file at reload time is said in the log and changes
    nothing: the process keeps serving with the settings it had."""
    with served(tmp_path) as server:
        assert "READY=1" in server.notifications.recv(4096).decode().splitlines()
        config = tmp_path / "config.toml"
        good = config.read_text()
        config.write_text(good.replace("[auth]\n", '[auth]\nmax_failures_per_user = "many"\n'))
        server.process.send_signal(signal.SIGHUP)
        said = server.wait_for("reload refused")
        assert "auth.max_failures_per_user must be a number" in said
        assert server.process.poll() is None
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(base + "/jmap/session", auth=("alice", "pw")).status_code == 200
        config.write_text("[nosuch]\nkey = 1\n")
        server.process.send_signal(signal.SIGHUP)
        assert "unknown setting nosuch.key" in server.wait_for("unknown setting")
        assert httpx.get(base + "/jmap/session", auth=("alice", "pw")).status_code == 200
