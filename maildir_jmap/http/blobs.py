"""Upload (RFC 8620 §6.1) and download (§6.2) endpoints."""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.requests import ClientDisconnect
from starlette.responses import FileResponse, Response

from maildir_jmap.core.errors import ERROR_URN
from maildir_jmap.http.api import current_user, json_response, problem_response, server_of
from maildir_jmap.mail.blobs import blob_bytes
from maildir_jmap.server.execute import SlotsFull
from maildir_jmap.store.account import Account
from maildir_jmap.store.blobs import BlobTooLarge

log = logging.getLogger(__name__)
router = APIRouter()

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
MEDIA_TYPE = re.compile(
    rf"{_TOKEN}/{_TOKEN}(\s*;\s*{_TOKEN}=({_TOKEN}|\"[^\"\\\x00-\x1f\x7f]*\"))*"
)
DEFAULT_TYPE = "application/octet-stream"


def media_type(value: str | None) -> str:
    """A client-supplied media type if it is well-formed, else the generic one (so a
    hostile value never reaches a response header)."""
    if value and MEDIA_TYPE.fullmatch(value.strip()):
        return value.strip()
    return DEFAULT_TYPE


def content_disposition(name: str) -> str:
    """RFC 6266 §4.3: an ASCII ``filename`` fallback and a UTF-8 ``filename*``."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def _account(request: Request, account_id: str) -> Account | Response:
    user = await current_user(request)
    if isinstance(user, Response):
        return user
    access = server_of(request).access(user).get(account_id)
    if access is None:
        return problem_response(404, ERROR_URN + "accountNotFound", "No such account.")
    account = access.backend
    assert isinstance(account, Account)
    return account


@router.post("/jmap/upload/{account_id}/")
@router.post("/jmap/upload/{account_id}", include_in_schema=False)
async def upload(request: Request, account_id: str) -> Response:
    account = await _account(request, account_id)
    if isinstance(account, Response):
        return account
    server = server_of(request)
    limits = server.config.limits
    too_large = problem_response(
        413,
        ERROR_URN + "limit",
        f"Uploads are limited to {limits.maxSizeUpload} bytes.",
        limit="maxSizeUpload",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.maxSizeUpload:
        return too_large
    try:
        with server.uploads.take(account.username, limits.maxConcurrentUpload):
            blob = await account.blobs.put(request.stream(), limits.maxSizeUpload)
    except SlotsFull:
        return problem_response(
            429,
            ERROR_URN + "limit",
            f"At most {limits.maxConcurrentUpload} concurrent uploads.",
            limit="maxConcurrentUpload",
        )
    except BlobTooLarge:
        return too_large
    except ClientDisconnect:
        log.debug("client went away during an upload to %s", account_id)
        return Response(status_code=400)  # nobody is there to read it
    body = {
        "accountId": account_id,
        "blobId": blob.blob_id,
        "type": media_type(request.headers.get("content-type")),
        "size": blob.size,
    }
    return json_response(body, status=201)


@router.get("/jmap/download/{account_id}/{blob_id}/{name}")
async def download(request: Request, account_id: str, blob_id: str, name: str) -> Response:
    account = await _account(request, account_id)
    if isinstance(account, Response):
        return account
    headers = {
        "Content-Disposition": content_disposition(name),
        # §6.2: blob contents never change.
        "Cache-Control": "private, immutable, max-age=31536000",
        # §6.2: "The server MUST return the data with [the given type] as the
        # Content-Type": set here, as Starlette's media_type would add a charset to
        # text/* types.
        "Content-Type": media_type(request.query_params.get("accept")),
    }
    path = account.blobs.path_of(blob_id)
    if path is not None:  # an upload: streamed from its file
        return FileResponse(path, headers=headers)
    content = await anyio.to_thread.run_sync(blob_bytes, account, blob_id)
    if content is None:
        return problem_response(404, "about:blank", "No such blob.")
    return Response(content, headers=headers)
