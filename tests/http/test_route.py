"""GET /jmap/route, nginx's auth_request lookup (issue 20), through the real app;
tests/test_backends.py drives it from a real nginx."""

from __future__ import annotations

from pathlib import Path

from maildir_jmap.config import Config
from maildir_jmap.server.routing import Routing
from tests.conftest import AppFactory, client_for

BACKENDS = ("127.0.0.2:8080", "127.0.0.3:8080")


async def test_valid_credentials_get_their_backend_and_wrong_ones_401(
    tmp_path: Path, make_app: AppFactory
) -> None:
    config = Config(state_dir=tmp_path / "state", watch=False, route_backends=BACKENDS)
    app = make_app(config=config)
    async with client_for(app) as client:
        found = await client.get("/jmap/route")
        assert found.status_code == 204
        assert found.headers["x-backend"] == Routing(BACKENDS, 8080).hashed("alice")
        assert not app.state.server.pool.open_accounts()  # routing opens no account
    async with client_for(app, None) as anonymous:
        refused = await anonymous.get("/jmap/route", auth=("alice", "wrong"))
        assert refused.status_code == 401
        assert "x-backend" not in refused.headers
        assert len(refused.headers.get_list("www-authenticate")) == 2


async def test_without_backends_configured_there_is_no_route(make_app: AppFactory) -> None:
    async with client_for(make_app()) as client:
        assert (await client.get("/jmap/route")).status_code == 404


async def test_malformed_and_hostile_credentials_get_401_and_no_backend(
    tmp_path: Path, make_app: AppFactory
) -> None:
    config = Config(state_dir=tmp_path / "state", watch=False, route_backends=BACKENDS)
    app = make_app(config=config)
    async with client_for(app, None) as anonymous:
        for header in ("Basic !!!", "Basic " + "QQ==" * 10, "Bearer nope", "Digest x", "Basic"):
            refused = await anonymous.get("/jmap/route", headers={"Authorization": header})
            assert refused.status_code == 401, header
            assert "x-backend" not in refused.headers
        hostile = await anonymous.get("/jmap/route", auth=("../../etc\r\nX: y", "pw"))
        assert hostile.status_code == 401
    assert not app.state.server.pool.open_accounts()
    assert not (tmp_path / "state" / "accounts").exists()  # nothing made for anyone
