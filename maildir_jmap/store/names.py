"""Folder names: modified UTF-7 (RFC 3501 §5.1.3), layouts, and what we refuse.

Dovecot keeps folder names on disk in modified UTF-7 (MAILDIR.md §1). A JMAP
Mailbox name is one hierarchy level in Unicode; the folder's directory joins the
encoded levels with the layout's separator: ``.A.B`` in Maildir++ (the root is
INBOX), ``A/B`` with ``LAYOUT=fs``.

With Dovecot's listescape plugin (2.3: ``mail_plugins = listescape``, the escape
character ``listescape_char``, ``\\`` by default) a name may hold what the disk
cannot: the storage separator, ``/``, the escape character itself, a leading
``~`` and a level that is ``.`` or ``..`` are written as the escape character and
two lowercase hex digits (``a.b`` is ``.a\2eb`` in Maildir++), as Dovecot's
mailbox_list_escape_name_params does.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from dataclasses import dataclass

MAX_NAME_BYTES = 200  # one level, encoded; well inside NAME_MAX (255) with room for the dot
RESERVED = frozenset({"cur", "new", "tmp", "subscriptions", "maildirfolder"})


class BadName(ValueError):
    """A mailbox name we will not write (the text says why)."""


# -- modified UTF-7 ----------------------------------------------------------------


def encode_mutf7(text: str) -> str:
    """RFC 3501 §5.1.3: printable ASCII stands for itself ('&' as '&-'); anything
    else is UTF-16BE in base64 with ',' for '/', no padding, between '&' and '-'."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in text:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


_SHIFT = re.compile(r"&([A-Za-z0-9+,]*)-")


def decode_mutf7(text: str) -> str:
    """Inverse of ``encode_mutf7``; raises ValueError on malformed input."""
    out: list[str] = []
    position = 0
    while position < len(text):
        char = text[position]
        if not 0x20 <= ord(char) <= 0x7E:
            raise ValueError(f"non-ASCII character in modified UTF-7: {text!r}")
        if char != "&":
            out.append(char)
            position += 1
            continue
        match = _SHIFT.match(text, position)
        if match is None:
            raise ValueError(f"unterminated '&' in modified UTF-7: {text!r}")
        payload = match.group(1)
        if payload == "":
            out.append("&")
        else:
            padded = payload.replace(",", "/") + "=" * (-len(payload) % 4)
            try:
                raw = base64.b64decode(padded, validate=True)
                decoded = raw.decode("utf-16-be")
            except (ValueError, UnicodeDecodeError) as exc:
                raise ValueError(f"bad modified UTF-7 in {text!r}") from exc
            if len(raw) % 2 or any(0x20 <= ord(c) <= 0x7E for c in decoded):
                raise ValueError(f"non-canonical modified UTF-7 in {text!r}")
            out.append(decoded)
        position = match.end()
    return "".join(out)


# -- layouts -------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How a folder's hierarchy maps onto directories under the Maildir root."""

    name: str  # "maildir++" or "fs"
    separator: str  # between encoded levels on disk
    escape: str | None = None
    """Dovecot's listescape character, when names are escaped on disk."""

    @property
    def marker(self) -> bool:
        """Maildir++ folders carry an empty ``maildirfolder`` file (MAILDIR.md §1)."""
        return self.name == "maildir++"

    def directory(self, levels: tuple[str, ...]) -> str:
        """The folder's directory relative to the root ("" for INBOX)."""
        if not levels:
            return ""
        encoded = [encode_mutf7(self._escape(level, i == 0)) for i, level in enumerate(levels)]
        if self.name == "maildir++":
            return "." + ".".join(encoded)
        return "/".join(encoded)

    def levels(self, directory: str) -> tuple[str, ...]:
        """Inverse of ``directory``; raises ValueError for names Dovecot would not make."""
        if directory == "":
            return ()
        if self.name == "maildir++":
            if not directory.startswith(".") or directory in (".", ".."):
                raise ValueError(f"not a Maildir++ folder: {directory!r}")
            parts = directory[1:].split(".")
        else:
            parts = directory.split("/")
        if any(p == "" for p in parts):
            raise ValueError(f"empty hierarchy level in {directory!r}")
        return tuple(self._unescape(decode_mutf7(p)) for p in parts)

    def _escape(self, level: str, first: bool) -> str:
        char = self.escape
        if char is None:
            return level
        special = {self.separator, char, "/"}
        out = [f"{char}{ord(c):02x}" if c in special else c for c in level]
        if first and level.startswith("~"):
            out[0] = f"{char}{ord('~'):02x}"
        if level in (".", "..") and out[0] == ".":
            out[0] = f"{char}2e"
        return "".join(out)

    def _unescape(self, level: str) -> str:
        char = self.escape
        if char is None or char not in level:
            return level
        pattern = re.escape(char) + "([0-9a-fA-F]{2})"
        return re.sub(pattern, lambda m: chr(int(m.group(1), 16)), level)


MAILDIRPP = Layout("maildir++", ".")
FS = Layout("fs", "/")
LAYOUTS = {"maildir++": MAILDIRPP, "fs": FS}


def check_name(name: object, layout: Layout, *, top_level: bool = False) -> str:
    """Validate one JMAP Mailbox name for writing to disk; returns it NFC-normalised.

    Refused: empty, control characters (RFC 8621 §2: Net-Unicode), the layout's
    separator and '/', '.' and '..', names that collide with a Maildir's own entries
    (cur, new, tmp, dovecot-*, ...), leading '.' (a hidden or Maildir++-looking
    directory) and anything longer than a directory name can be once encoded.
    """
    if not isinstance(name, str) or name == "":
        raise BadName("a name must be a non-empty string")
    name = unicodedata.normalize("NFC", name)
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name):
        raise BadName("a name must not contain control or format characters")
    if layout.escape is None and ("/" in name or layout.separator in name):
        raise BadName(
            f"a name must not contain '/' or {layout.separator!r} "
            "(Dovecot's listescape plugin allows them)"
        )
    if layout.escape is not None and "/" in name:
        raise BadName("a name must not contain '/' (the IMAP hierarchy separator)")
    if (name.startswith(".") and layout.escape is None) or name.strip() != name:
        raise BadName("a name must not start with '.' or with or end in spaces")
    lowered = name.lower()
    if lowered in RESERVED or lowered.startswith("dovecot") or (top_level and lowered == "inbox"):
        raise BadName(f"{name!r} is reserved")
    if len(encode_mutf7(name).encode("ascii")) > MAX_NAME_BYTES:
        raise BadName("the name is too long")
    return name
