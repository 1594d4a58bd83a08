"""/healthz and /metrics (Prometheus) over the real ASGI app."""

from __future__ import annotations

from pathlib import Path

from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CORE
from tests.conftest import AppFactory, client_for


async def test_healthz_needs_no_login(make_app: AppFactory) -> None:
    async with client_for(make_app(), user=None) as client:
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"


async def test_readyz_reports_auth_state_and_accounts(make_app: AppFactory, tmp_path: Path) -> None:
    """Issue 17: readiness is not liveness. Ready with a users file and Maildirs
    that open; not ready (503, the reason named) once an account cannot be opened."""
    from maildir_jmap.users import User, UserDirectory

    async with client_for(make_app(), user=None) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"auth": "ok", "state": "ok", "accounts": "ok"}
    broken = User("carol", tmp_path / "gone", "$argon2id$x", unusable="mail location refused")
    app = make_app(users=UserDirectory({"carol": broken}))
    async with client_for(app, user=None) as client:
        response = await client.get("/readyz")
        assert (await client.get("/healthz")).status_code == 200
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["checks"]["accounts"].startswith("1 cannot be opened (carol: ")


async def test_metrics_count_calls_and_report_state(make_app: AppFactory) -> None:
    async with client_for(make_app()) as client:
        calls = [["Core/echo", {}, "0"], ["Nope/get", {}, "1"]]
        await client.post("/jmap/api/", json={"using": [CORE], "methodCalls": calls})
        text = (await client.get("/metrics")).text
    assert 'maildir_jmap_method_calls_total{method="Core/echo",outcome="ok"}' in text
    assert 'maildir_jmap_method_calls_total{method="unknown",outcome="unknownMethod"}' in text
    assert "maildir_jmap_api_request_seconds_bucket" in text
    assert 'maildir_jmap_logins_total{outcome="ok"}' in text
    assert "maildir_jmap_open_accounts 1.0" in text
    assert "maildir_jmap_unreadable_files 0.0" in text  # message files a scan could not read
    assert "maildir_jmap_index_emails" in text
    assert "maildir_jmap_push_listeners 0.0" in text


async def test_metrics_only_for_configured_networks(make_app: AppFactory, tmp_path: Path) -> None:
    config = Config(state_dir=tmp_path / "s", watch=False, metrics_from=("10.0.0.0/8",))
    async with client_for(make_app(config=config), user=None) as client:
        response = await client.get("/metrics")
        assert response.status_code == 403
