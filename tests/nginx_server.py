"""A private nginx (Debian's package) serving one site file on loopback ports."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

PROXY = Path(__file__).resolve().parent.parent / "deploy" / "maildir-jmap-proxy.conf"


def installed(root: Path, text: str, http: int | None, https: int | None) -> str:
    """A shipped site file with what an admin changes (certificate, the include's
    location, the ACME root) and, for serving, loopback ports instead of 80 and 443."""
    from tests.tls import self_signed

    cert, key = self_signed(root)
    (root / "www").mkdir(exist_ok=True)
    proxy = root / "maildir-jmap-proxy.conf"
    shutil.copy(PROXY, proxy)
    text = text.replace("/etc/letsencrypt/live/mail.example.org/fullchain.pem", str(cert))
    text = text.replace("/etc/letsencrypt/live/mail.example.org/privkey.pem", str(key))
    text = text.replace("/etc/nginx/maildir-jmap-proxy.conf", str(proxy))
    text = text.replace("/var/www/letsencrypt", str(root / "www"))
    if http is not None and https is not None:
        text = text.replace("    listen [::]:80;\n", "").replace("    listen [::]:443 ssl;\n", "")
        text = text.replace("listen 80;", f"listen 127.0.0.1:{http};")
        text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;")
    return text


@contextlib.contextmanager
def nginx(root: Path, site: Path, probe: str) -> Iterator[None]:
    """nginx with ``site`` in a minimal main config under ``root``, until ``probe``
    (a URL it serves) answers; stopped on exit."""
    conf = root / "main.conf"
    temp = root / "temp"
    temp.mkdir(exist_ok=True)
    conf.write_text(
        f"daemon off;\nuser root;\nworker_processes 1;\npid {root / 'nginx.pid'};\n"
        f"error_log {root / 'error.log'};\nevents {{}}\nhttp {{\n"
        f"  access_log off;\n  client_body_temp_path {temp};\n  proxy_temp_path {temp};\n"
        f"  fastcgi_temp_path {temp};\n  uwsgi_temp_path {temp};\n  scgi_temp_path {temp};\n"
        f"  include {site};\n}}\n"
    )
    process = subprocess.Popen(["nginx", "-p", str(root), "-c", str(conf)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(probe, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError((root / "error.log").read_text()) from None
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(10)


def websocket_echo(base: str, login: str, password: str) -> object:
    """One Core/echo over the WebSocket (RFC 8887) through nginx's TLS at ``base``;
    the response's methodResponses."""
    import base64
    import json
    import ssl

    from websockets.sync.client import connect

    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    header = "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()
    request = {"@type": "Request", "id": "r", "using": ["urn:ietf:params:jmap:core"],
               "methodCalls": [["Core/echo", {"via": "ws"}, "c"]]}  # fmt: skip
    url = base.replace("https", "wss") + "/jmap/ws/"
    headers = {"Authorization": header}
    with connect(url, subprotocols=["jmap"], additional_headers=headers, ssl=tls) as ws:  # type: ignore[list-item]
        ws.send(json.dumps(request))
        return json.loads(ws.recv(timeout=10))["methodResponses"]
