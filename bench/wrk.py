"""Load from wrk (C, one or two threads): list views and flag toggles against the
real server, so the load generator takes little of the cores the server needs.
A Python client pool of 50 took 40 % of a core at 120 requests/s (issue 18);
wrk takes 3 %. ``prepared`` maps each login to its (account, inbox, Email ids).
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
from typing import Any

from bench.listview import USING, list_view_calls
from bench.push import PASSWORD

SCRIPT = r"""
local users = {%s}
local reads = %s
local share = %s
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local u = users[math.random(#users)]
  wrk.headers["Authorization"] = u[1]
  local body
  if math.random() < share then
    body = string.format(reads, u[2], u[3], math.random(0, 499), u[2])
  else
    body = string.format('{"using":%s,"methodCalls":[["Email/set",{"accountId":"%%s",' ..
      '"update":{"%%s":{"keywords/$flagged":%%s}}},"s"]]}', u[2],
      u[4][math.random(#u[4])], math.random() < 0.5 and "true" or "null")
  end
  return wrk.format(nil, "/jmap/api/", nil, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%%d,"seconds":%%f,"p50":%%f,"p95":%%f,"errors":%%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def _lua(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def script(prepared: dict[str, Any], reads: float) -> str:
    """The Lua script: a list view at a random position with probability ``reads``,
    else a $flagged toggle on one of the user's first 200 Emails."""
    users = []
    for login, (account, inbox, ids) in prepared.items():
        header = "Basic " + base64.b64encode(f"{login}:{PASSWORD}".encode()).decode()
        sample = ", ".join(_lua(i) for i in ids[:200])
        users.append(f"{{{_lua(header)}, {_lua(account)}, {_lua(inbox)}, {{{sample}}}}}")
    calls = list_view_calls("ACCOUNT", "INBOX", position=123456)
    view = json.dumps({"using": USING, "methodCalls": calls}, separators=(",", ":"))
    view = view.replace("%", "%%").replace('"ACCOUNT"', '"%s"', 1).replace('"INBOX"', '"%s"')
    view = view.replace("123456", "%d").replace('"ACCOUNT"', '"%s"')
    using = json.dumps(USING, separators=(",", ":"))
    return SCRIPT % (", ".join(users), _lua(view), repr(float(reads)), using)


def start(
    url: str, prepared: dict[str, Any], clients: int, seconds: float, reads: float, threads: int
) -> tuple[subprocess.Popen[str], Any]:
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua")  # noqa: SIM115 (closed by finish)
    lua.write(script(prepared, reads))
    lua.flush()
    argv = ["wrk", f"-t{threads}", f"-c{clients}", f"-d{int(seconds)}s", "--timeout", "30s"]
    process = subprocess.Popen(
        [*argv, "-s", lua.name, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return process, lua


def finish(running: tuple[subprocess.Popen[str], Any]) -> dict[str, float]:
    process, lua = running
    out, err = process.communicate()
    lua.close()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed: {err.strip()}")
    figures = json.loads(out.strip().splitlines()[-1])
    return {
        "requests_per_s": figures["requests"] / figures["seconds"],
        "p50_ms": figures["p50"],
        "p95_ms": figures["p95"],
        "errors": float(figures["errors"]),
    }


def run_wrk(
    url: str, prepared: dict[str, Any], clients: int, seconds: float, reads: float
) -> dict[str, float]:
    """``clients`` connections each looping the mix; one latency distribution."""
    return finish(start(url, prepared, clients, seconds, reads, threads=2))


def split(
    url: str, prepared: dict[str, Any], readers: int, writers: int, seconds: float
) -> dict[str, float]:
    """``readers`` connections looping list views and ``writers`` looping flag
    toggles at the same time (two wrk processes), so each kind has its latencies."""
    reading = start(url, prepared, readers, seconds, 1.0, threads=1)
    writing = start(url, prepared, writers, seconds, 0.0, threads=1)
    read, write = finish(reading), finish(writing)
    total = read["requests_per_s"] + write["requests_per_s"]
    return {
        "requests_per_s": total,
        "write_share": write["requests_per_s"] / total if total else 0.0,
        "read_p50_ms": read["p50_ms"],
        "read_p95_ms": read["p95_ms"],
        "write_p50_ms": write["p50_ms"],
        "write_p95_ms": write["p95_ms"],
        "errors": read["errors"] + write["errors"],
    }
