"""Resolving a blobId to bytes (RFC 8620 §6.2): uploads, whole messages, body parts.

``G<sha256>`` is an upload or a message (its CRLF form, DESIGN: Identity), and
``P<email hash>_<partId>`` a body part after transfer decoding; both resolve
without a lookup table.
"""

from __future__ import annotations

import re

from maildir_jmap.mime.parse import Part, parse
from maildir_jmap.store.account import Account

_MESSAGE = re.compile(r"G([0-9a-f]{64})")
_PART = re.compile(r"P([0-9a-f]{24})_([0-9]{1,7})")


def _find(part: Part, part_id: str) -> Part | None:
    if part.part_id == part_id:
        return part
    for child in part.sub_parts or ():
        found = _find(child, part_id)
        if found is not None:
            return found
    return None


def blob_bytes(account: Account, blob_id: str) -> bytes | None:
    """The blob's content, or None when this account has no such blob."""
    upload = account.blobs.path_of(blob_id)
    if upload is not None:
        return upload.read_bytes()
    message = _MESSAGE.fullmatch(blob_id)
    if message is not None:
        digest = message.group(1)
        rec = account.index.emails.get("M" + digest[:24])
        if rec is None or rec.digest != digest:
            return None
        return account.read_message(rec)
    part_match = _PART.fullmatch(blob_id)
    if part_match is not None:
        rec = account.index.emails.get("M" + part_match.group(1))
        raw = account.read_message(rec) if rec is not None else None
        if raw is None:
            return None
        part = _find(parse(raw), part_match.group(2))
        return part.decoded()[0] if part is not None and part.sub_parts is None else None
    return None
