"""Upload (RFC 8620 §6.1) and download (§6.2) of blobs."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CoreLimits
from maildir_jmap.store.blobs import BlobStore
from tests.conftest import AppFactory, client_for


async def ids(client: httpx.AsyncClient) -> str:
    session = (await client.get("/jmap/session")).json()
    return next(iter(session["accounts"]))


async def test_upload_then_download_round_trip_rfc8620_6(client: httpx.AsyncClient) -> None:
    account = await ids(client)
    data = os.urandom(100_000)
    response = await client.post(
        f"/jmap/upload/{account}/", content=data, headers={"Content-Type": "image/png"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body == {
        "accountId": account,
        "blobId": "G" + hashlib.sha256(data).hexdigest(),
        "type": "image/png",
        "size": len(data),
    }
    name = "Kölner Dom.png"
    download = await client.get(
        f"/jmap/download/{account}/{body['blobId']}/{quote(name)}",
        params={"accept": "image/png"},
        headers={"Accept-Encoding": "gzip"},
    )
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["content-type"] == "image/png"
    assert "content-encoding" not in download.headers  # served raw
    assert "immutable" in download.headers["cache-control"]
    disposition = download.headers["content-disposition"]
    assert "filename*=UTF-8''K%C3%B6lner%20Dom.png" in disposition  # RFC 6266
    assert 'filename="K_lner Dom.png"' in disposition


async def test_same_bytes_same_blob_id_rfc8620_6_1(client: httpx.AsyncClient) -> None:
    account = await ids(client)
    first = (await client.post(f"/jmap/upload/{account}/", content=b"abc")).json()
    second = (await client.post(f"/jmap/upload/{account}/", content=b"abc")).json()
    assert first["blobId"] == second["blobId"]
    assert first["type"] == "application/octet-stream"


async def test_upload_too_large_is_413_with_problem_details(
    make_app: AppFactory, tmp_path: Path
) -> None:
    config = Config(state_dir=tmp_path / "s", watch=False, limits=CoreLimits(maxSizeUpload=1000))
    async with client_for(make_app(config=config)) as client:
        account = await ids(client)
        response = await client.post(f"/jmap/upload/{account}/", content=b"x" * 1001)

        async def stream() -> Any:
            for _ in range(20):
                yield b"y" * 100

        streamed = await client.post(f"/jmap/upload/{account}/", content=stream())
    for r in (response, streamed):
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["limit"] == "maxSizeUpload"
    leftovers = [
        p
        for p in (tmp_path / "s").rglob("*")
        if p.is_file() and p.parent.name in ("uploads", "tmp")
    ]
    assert leftovers == []


async def test_other_accounts_blobs_are_not_reachable(make_app: AppFactory) -> None:
    app = make_app()
    async with client_for(app, "alice") as alice, client_for(app, "bob") as bob:
        alice_id, bob_id = await ids(alice), await ids(bob)
        blob = (await bob.post(f"/jmap/upload/{bob_id}/", content=b"bob's secret")).json()["blobId"]
        assert (await alice.get(f"/jmap/download/{bob_id}/{blob}/x")).status_code == 404
        assert (await alice.get(f"/jmap/download/{alice_id}/{blob}/x")).status_code == 404
        assert (await alice.post(f"/jmap/upload/{bob_id}/", content=b"x")).status_code == 404
        assert (await bob.get(f"/jmap/download/{bob_id}/{blob}/x")).content == b"bob's secret"


@pytest.mark.parametrize(
    "blob_id", ["../../etc/passwd", "G" + "0" * 64, "Gxyz", "%2e%2e%2fusers.toml"]
)
async def test_unknown_or_hostile_blob_ids_are_404(client: httpx.AsyncClient, blob_id: str) -> None:
    account = await ids(client)
    response = await client.get(f"/jmap/download/{account}/{blob_id}/name")
    assert response.status_code == 404


async def test_hostile_accept_type_never_reaches_the_header(client: httpx.AsyncClient) -> None:
    account = await ids(client)
    blob = (await client.post(f"/jmap/upload/{account}/", content=b"x")).json()["blobId"]
    response = await client.get(
        f"/jmap/download/{account}/{blob}/n", params={"accept": "text/html\r\nSet-Cookie: a=b"}
    )
    assert response.headers["content-type"] == "application/octet-stream"
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    "accept", ["text/plain", "text/html; charset=iso-8859-1", "message/rfc822", "image/png"]
)
async def test_download_type_is_exactly_the_one_asked_for_rfc8620_6_2(
    client: httpx.AsyncClient, accept: str
) -> None:
    """§6.2: the server MUST return the data with the given type as Content-Type:
    no charset is added to text/* types. Both an upload and a message's own blob."""
    account = await ids(client)
    upload = (await client.post(f"/jmap/upload/{account}/", content=b"hello")).json()["blobId"]
    body = {
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
        "methodCalls": [
            ["Email/query", {"accountId": account, "limit": 1}, "q"],
            [
                "Email/get",
                {
                    "accountId": account,
                    "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                    "properties": ["blobId"],
                },
                "g",
            ],
        ],
    }
    answer = await client.post(
        "/jmap/api/", json=body, headers={"Content-Type": "application/json"}
    )
    message = answer.json()["methodResponses"][1][1]["list"][0]["blobId"]
    for blob in (upload, message):
        response = await client.get(
            f"/jmap/download/{account}/{blob}/file", params={"accept": accept}
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == accept


def test_expired_uploads_are_swept(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, expiry=3600)
    old = tmp_path / ("a" * 64)
    old.write_bytes(b"old")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    fresh = tmp_path / ("b" * 64)
    fresh.write_bytes(b"fresh")
    assert store.sweep() == 1
    assert not old.exists()
    assert fresh.exists()
