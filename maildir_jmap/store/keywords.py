"""JMAP keywords <-> Maildir flags and per-folder keyword letters (DESIGN: Keywords).

Pure functions: the caller reads the folder's ``dovecot-keywords`` (letter ->
IMAP name) and writes any names this module asks for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

SYSTEM_FLAGS = {"D": "$draft", "F": "$flagged", "R": "$answered", "S": "$seen"}
FLAG_OF = {keyword: flag for flag, keyword in SYSTEM_FLAGS.items()}
FORWARDED = "$forwarded"  # read from P or $Forwarded, written as both
# IMAP names whose JMAP keyword differs from their lowercase form.
ALIASES = {"junk": "$junk", "nonjunk": "$notjunk"}
# The case we write a keyword in when the folder has no name for it yet
# (IANA "IMAP and JMAP Keywords" registry, RFC 8621 §10.4).
CANONICAL = {
    "$forwarded": "$Forwarded",
    "$junk": "$Junk",
    "$notjunk": "$NotJunk",
    "$mdnsent": "$MDNSent",
    "$phishing": "$Phishing",
    "$important": "$Important",
}
_FORBIDDEN = set('(){]%*"\\')


def is_keyword(value: object) -> bool:
    """RFC 8621 §4.1.1: 1-255 characters of %x21-%x7E except ( ) { ] % * \" \\."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= 255
        and all(0x21 <= ord(c) <= 0x7E and c not in _FORBIDDEN for c in value)
    )


def jmap_keyword(imap_name: str) -> str:
    lowered = imap_name.lower()
    return ALIASES.get(lowered, lowered)


def keywords_of(flags: str, letters: str, names: Mapping[str, str]) -> set[str]:
    """The JMAP keywords of one file. Letters without a line in dovecot-keywords
    carry no keyword (Dovecot would show them as ``unknown-N``)."""
    keywords = {SYSTEM_FLAGS[f] for f in flags if f in SYSTEM_FLAGS}
    if "P" in flags:
        keywords.add(FORWARDED)
    for letter in letters:
        name = names.get(letter)
        if name is not None and _representable(name):
            keywords.add(jmap_keyword(name))
    return keywords


def _representable(name: str) -> bool:
    return is_keyword(name)


def imap_names_needed(
    keywords: Iterable[str], names: Mapping[str, str], spelled: Mapping[str, str] | None = None
) -> list[str]:
    """IMAP names to add to the folder's dovecot-keywords before ``keywords`` can be
    written there (an existing name is reused whatever its case). ``spelled`` maps
    a keyword to the IMAP spelling to use (a moved message keeps its own)."""
    have = {jmap_keyword(name) for name in names.values()}
    spelled = spelled or {}
    needed = []
    for keyword in sorted(set(keywords)):
        if keyword in FLAG_OF or keyword in have:
            continue
        needed.append(spelled.get(keyword) or CANONICAL.get(keyword, keyword))
    return needed


def marks_for(
    keywords: Iterable[str], flags: str, letters: str, names: Mapping[str, str]
) -> tuple[str, str]:
    """The (flags, letters) that give a file exactly ``keywords``, keeping every flag
    and letter we do not interpret (MAILDIR.md §6 rule 4). ``names`` must already
    hold a letter for each keyword (see ``imap_names_needed``)."""
    wanted = set(keywords)
    kept_flags = [f for f in flags if f not in SYSTEM_FLAGS and f != "P"]
    new_flags = kept_flags + [FLAG_OF[k] for k in wanted if k in FLAG_OF]
    if FORWARDED in wanted:
        new_flags.append("P")
    letter_of: dict[str, str] = {}
    for letter, name in sorted(names.items()):
        letter_of.setdefault(jmap_keyword(name), letter)
    new_letters = [
        letter for letter in letters if letter not in names or not _representable(names[letter])
    ]
    for keyword in wanted:
        if keyword in FLAG_OF:
            continue
        found = letter_of.get(keyword)
        if found is None:
            if keyword == FORWARDED:
                continue  # P alone carries it when no $Forwarded name was made
            raise KeyError(f"no letter for {keyword!r}")
        new_letters.append(found)
    return "".join(sorted(set(new_flags))), "".join(sorted(set(new_letters)))
