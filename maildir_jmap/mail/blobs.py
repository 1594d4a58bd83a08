"""Resolving a blobId to bytes (RFC 8620 §6.2): uploads, whole messages, body parts.

``G<sha256>`` is an upload or a message (its CRLF form, DESIGN: Identity);
``P<email hash>`` names an indexed message by its Email id. Either may be
followed by ``_<partId>`` steps, each selecting a body part (after transfer
decoding) of what the previous step gave, parsed as a message: ``P<hash>_3`` is
part 3 of an Email, ``G<sha>_2_1`` part 1 of the message attached as part 2 of
an upload (what Email/parse hands out). All resolve without a lookup table.
"""

from __future__ import annotations

import re

from maildir_jmap.core.capabilities import CORE
from maildir_jmap.core.dispatch import Context, Method
from maildir_jmap.core.errors import MethodError
from maildir_jmap.core.types import ArgumentError, JSONObject, arg_id, arg_id_list, check_known
from maildir_jmap.mail.records import account_of
from maildir_jmap.mime.parse import Part, parse
from maildir_jmap.store.account import Account

_BLOB = re.compile(r"(G[0-9a-f]{64}|P[0-9a-f]{24})((?:_[0-9]{1,7}){0,8})")


def _find(part: Part, part_id: str) -> Part | None:
    if part.part_id == part_id:
        return part
    for child in part.sub_parts or ():
        found = _find(child, part_id)
        if found is not None:
            return found
    return None


def _base_bytes(account: Account, base: str) -> bytes | None:
    if base[0] == "G":
        upload = account.blobs.path_of(base)
        if upload is not None:
            return upload.read_bytes()
        rec = account.index.emails.get("M" + base[1:25])
        if rec is None or rec.digest != base[1:]:
            return None
        return account.read_message(rec)
    rec = account.index.emails.get("M" + base[1:])
    return account.read_message(rec) if rec is not None else None


def blob_bytes(account: Account, blob_id: str) -> bytes | None:
    """The blob's content, or None when this account has no such blob."""
    match = _BLOB.fullmatch(blob_id)
    if match is None:
        return None
    data = _base_bytes(account, match.group(1))
    for part_id in match.group(2).split("_")[1:]:
        if data is None:
            return None
        part = _find(parse(data), part_id)
        if part is None or part.sub_parts is not None:
            return None
        data = part.decoded()[0]
    return data


def blob_copy(ctx: Context, args: JSONObject) -> JSONObject:
    """Blob/copy (RFC 8620 §6.3): blobs of one account made available in another
    (stored there as uploads, under the id their bytes give)."""
    check_known(args, ("fromAccountId", "accountId", "blobIds"))
    from_id = arg_id(args, "fromAccountId")
    account_id = arg_id(args, "accountId")
    assert from_id is not None
    assert account_id is not None
    blob_ids = arg_id_list(args, "blobIds") or []
    if from_id == account_id:
        raise ArgumentError("fromAccountId and accountId must differ")
    if from_id not in ctx.accounts:
        raise MethodError("fromAccountNotFound")
    target = account_of(ctx.account(account_id, CORE))
    source = account_of(ctx.account(from_id, CORE))
    copied: JSONObject = {}
    not_copied: JSONObject = {}
    for blob_id in dict.fromkeys(blob_ids):
        data = blob_bytes(source, blob_id)
        if data is None:
            not_copied[blob_id] = {"type": "notFound", "description": None}
        else:
            copied[blob_id] = target.blobs.put_bytes(data).blob_id
    return {
        "fromAccountId": from_id,
        "accountId": account_id,
        "copied": copied or None,
        "notCopied": not_copied or None,
    }


def methods() -> list[Method]:
    return [Method("Blob/copy", CORE, blob_copy, account_arg="accountId", writes=True)]
