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
