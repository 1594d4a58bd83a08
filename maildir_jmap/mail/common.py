"""What the mail datatypes share: /changes over the index's change log."""

from __future__ import annotations

from maildir_jmap.core.errors import MethodError
from maildir_jmap.core.standard import Changes, compute_changes
from maildir_jmap.store.index import Index


def index_changes(
    index: Index, type_name: str, since_state: str, max_changes: int | None
) -> Changes:
    """RFC 8620 §5.2 for one type; a state from another index (another epoch) or
    older than the tombstone window is cannotCalculateChanges."""
    since = index.parse_state(since_state)
    if since is None or since < index.floor:
        raise MethodError("cannotCalculateChanges", "unknown or expired state")
    return compute_changes(
        index.change_log(type_name, since),
        since,
        max_changes,
        index.type_modseq.get(type_name, 0),
        lambda modseq: f"{index.epoch}-{modseq}",
    )
