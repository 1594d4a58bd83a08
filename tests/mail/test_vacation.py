"""VacationResponse (RFC 8621 §8) over the real ASGI app, written as Sieve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CORE, VACATION
from tests.conftest import AppFactory, client_for

USING = [CORE, VACATION]


async def call(client: httpx.AsyncClient, name: str, args: dict[str, Any]) -> list[Any]:
    session = (await client.get("/jmap/session")).json()
    account = session["primaryAccounts"][VACATION]
    body = {"using": USING, "methodCalls": [[name, {"accountId": account, **args}, "0"]]}
    response = await client.post("/jmap/api/", json=body)
    assert response.status_code == 200, response.text
    return list(response.json()["methodResponses"][0])


def config(tmp_path: Path) -> Config:
    return Config(state_dir=tmp_path / "state", watch=False, sieve_dir="{home}/sieve-{user}")


async def test_vacation_is_a_singleton_written_as_sieve_rfc8621_8(
    make_app: AppFactory, tmp_path: Path
) -> None:
    async with client_for(make_app(config=config(tmp_path))) as client:
        session = (await client.get("/jmap/session")).json()
        assert session["capabilities"][VACATION] == {}
        _, got, _ = await call(client, "VacationResponse/get", {"ids": None})
        assert got["list"] == [
            {
                "id": "singleton",
                "isEnabled": False,
                "fromDate": None,
                "toDate": None,
                "subject": None,
                "textBody": None,
                "htmlBody": None,
            }
        ]
        patch = {
            "isEnabled": True,
            "fromDate": "2026-12-20T00:00:00Z",
            "toDate": "2027-01-05T00:00:00Z",
            "subject": "Out of office",
            "textBody": "Back in January.",
        }
        _, result, _ = await call(client, "VacationResponse/set", {"update": {"singleton": patch}})
        assert result["updated"] == {"singleton": None}
        assert result["oldState"] != result["newState"]
        rule = (tmp_path / "sieve-alice" / "jmap-vacation.sieve").read_text()
        assert ':subject "Out of office"' in rule
        assert '"lt" "iso8601" "2027-01-05T00:00:00Z"' in rule
        assert (tmp_path / ".dovecot.sieve").is_symlink()
        _, got, _ = await call(client, "VacationResponse/get", {"ids": ["singleton", "other"]})
        assert got["list"][0] == {"id": "singleton", **patch, "htmlBody": None}
        assert got["notFound"] == ["other"]


async def test_bad_vacation_changes_are_refused_and_change_nothing(
    make_app: AppFactory, tmp_path: Path
) -> None:
    async with client_for(make_app(config=config(tmp_path))) as client:
        _, result, _ = await call(
            client,
            "VacationResponse/set",
            {
                "create": {"x": {"isEnabled": True}},
                "update": {"other": {"isEnabled": True}},
                "destroy": ["singleton"],
            },
        )
        assert result["notCreated"]["x"]["type"] == "singleton"  # RFC 8620 §5.3
        assert result["notDestroyed"]["singleton"]["type"] == "singleton"
        assert result["notUpdated"]["other"]["type"] == "notFound"
        for patch, prop in [
            ({"isEnabled": "yes"}, "isEnabled"),
            ({"fromDate": "tomorrow"}, "fromDate"),
            ({"subject": "two\r\nBcc: lines"}, "subject"),
            ({"textBody": 42}, "textBody"),
            ({"id": "other"}, "id"),
        ]:
            _, result, _ = await call(
                client, "VacationResponse/set", {"update": {"singleton": patch}}
            )
            assert result["notUpdated"]["singleton"]["properties"] == [prop], patch
        assert not (tmp_path / "sieve-alice").exists()
        assert not (tmp_path / ".dovecot.sieve").exists()


async def test_not_offered_without_a_sieve_location(make_app: AppFactory) -> None:
    async with client_for(make_app()) as client:
        session = (await client.get("/jmap/session")).json()
        assert VACATION not in session["capabilities"]
        body = {"using": USING, "methodCalls": [["VacationResponse/get", {}, "0"]]}
        response = await client.post("/jmap/api/", json=body)
        assert response.status_code == 400
        assert response.json()["type"] == "urn:ietf:params:jmap:error:unknownCapability"


async def test_two_virtual_users_of_one_domain_keep_their_own_scripts(tmp_path: Path) -> None:
    """Issue 15: with mail_location = maildir:/var/vmail/%d/%n, alice@ and bob@ have
    Maildirs side by side; taking the Maildir's parent as {home} made both write
    one sieve directory, bob's script replacing alice's. {home} is the userdb's."""
    from maildir_jmap.http.app import create_app
    from maildir_jmap.store.maildir import make_folder
    from maildir_jmap.users import User, UserDirectory, hash_password

    domain = tmp_path / "vmail" / "example.org"
    users = {}
    for name in ("alice", "bob"):
        make_folder(domain / name, marker=False)
        users[f"{name}@example.org"] = User(
            f"{name}@example.org",
            domain / name,
            hash_password("pw"),
            home=tmp_path / "homes" / name,  # what Dovecot's userdb answers
        )
    app = create_app(
        Config(state_dir=tmp_path / "state", watch=False, sieve_dir="{home}/sieve"),
        UserDirectory(users),
    )
    for name in ("alice", "bob"):
        transport = httpx.ASGITransport(app=app)
        auth = (f"{name}@example.org", "pw")
        async with httpx.AsyncClient(transport=transport, base_url="http://t", auth=auth) as client:
            patch = {"isEnabled": True, "subject": f"{name} is away", "textBody": "Later."}
            _, result, _ = await call(
                client, "VacationResponse/set", {"update": {"singleton": patch}}
            )
            assert result["updated"] == {"singleton": None}
    for name in ("alice", "bob"):
        script = tmp_path / "homes" / name / "sieve" / "jmap-vacation.sieve"
        assert f':subject "{name} is away"' in script.read_text()
    assert not (domain / "sieve").exists()  # nothing in the shared parent
