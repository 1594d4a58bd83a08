"""A JMAP client over the real ASGI app with the mail datatypes enabled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CORE, MAIL
from maildir_jmap.http.app import create_app
from maildir_jmap.server.registry import build_registry
from maildir_jmap.users import User, UserDirectory
from tests.conftest import PASSWORDS

USING = [CORE, MAIL]


class Jmap:
    """Just enough of a JMAP client for tests."""

    def __init__(self, http: httpx.AsyncClient, app: Any) -> None:
        self.http = http
        self.app = app
        self.account_id = ""

    async def start(self) -> Jmap:
        session = (await self.http.get("/jmap/session")).json()
        self.account_id = session["primaryAccounts"][MAIL]
        return self

    @property
    def account(self) -> Any:
        state = self.app.state.server
        return state.account(state.users.get("alice"))

    async def request(self, calls: list[list[Any]], **extra: Any) -> list[list[Any]]:
        for call in calls:
            call[1].setdefault("accountId", self.account_id)
        body = orjson.dumps({"using": USING, "methodCalls": calls, **extra})
        response = await self.http.post("/jmap/api/", content=body)
        assert response.status_code == 200, response.text
        responses: list[list[Any]] = response.json()["methodResponses"]
        return responses

    async def call(self, name: str, **args: Any) -> dict[str, Any]:
        (response,) = await self.request([[name, args, "c"]])
        assert response[0] == name, response
        result: dict[str, Any] = response[1]
        return result

    async def error(self, name: str, **args: Any) -> dict[str, Any]:
        (response,) = await self.request([[name, args, "c"]])
        assert response[0] == "error", response
        result: dict[str, Any] = response[1]
        return result

    async def mailboxes(self) -> dict[str, dict[str, Any]]:
        """name path ("Inbox", "Archive/2024") -> Mailbox."""
        found = (await self.call("Mailbox/get", ids=None))["list"]
        by_id = {m["id"]: m for m in found}

        def path(m: dict[str, Any]) -> str:
            parts = [m["name"]]
            while m["parentId"]:
                m = by_id[m["parentId"]]
                parts.append(m["name"])
            return "/".join(reversed(parts))

        return {path(m): m for m in found}


@pytest.fixture
async def jmap(
    tmp_path: Path, password_hashes: dict[str, str], maildir: Path
) -> AsyncIterator[Jmap]:
    users = UserDirectory({"alice": User("alice", maildir, password_hashes["alice"])})
    app = create_app(
        Config(state_dir=tmp_path / "state", watch=False), users, registry=build_registry()
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://jmap.test",
        auth=("alice", PASSWORDS["alice"]),
    ) as http:
        yield await Jmap(http, app).start()
