"""The object store for Identities and EmailSubmissions: states, change logs,
tombstones, persistence and a damaged file."""

from __future__ import annotations

from pathlib import Path

from maildir_jmap.core.records import compute_changes
from maildir_jmap.store import objects
from maildir_jmap.store.objects import ObjectStore


def changes(
    store: ObjectStore, type_name: str, state: str
) -> tuple[list[str], list[str], list[str]]:
    since = store.parse_state(type_name, state)
    assert since is not None
    result = compute_changes(
        store.change_log(type_name, since), since, None, store.type_modseq.get(type_name, 0), str
    )
    return result.created, result.updated, result.destroyed


def test_changes_survive_a_reload_rfc8620_5_2(tmp_path: Path) -> None:
    store = ObjectStore.open(tmp_path)
    empty = store.state("Identity")
    store.put("Identity", {"id": "I1", "name": "a"})
    store.put("Identity", {"id": "I2", "name": "b"})
    assert store.save() == {"Identity": store.state("Identity")}
    middle = store.state("Identity")
    store.put("Identity", {"id": "I1", "name": "a2"})
    store.drop("Identity", "I2")
    store.put("EmailSubmission", {"id": "U1"})
    store.save()
    again = ObjectStore.open(tmp_path)
    assert again.state("Identity") == store.state("Identity")
    assert changes(again, "Identity", empty) == (["I1"], [], [])  # I2 came and went
    assert changes(again, "Identity", middle) == ([], ["I1"], ["I2"])
    assert again.get("Identity", "I1") == {"id": "I1", "name": "a2"}


def test_a_damaged_file_starts_a_new_epoch(tmp_path: Path) -> None:
    store = ObjectStore.open(tmp_path)
    store.put("Identity", {"id": "I1"})
    store.save()
    old = store.state("Identity")
    (tmp_path / objects.FILE_NAME).write_bytes(b"\x93garbage")
    fresh = ObjectStore.open(tmp_path)
    assert fresh.parse_state("Identity", old) is None  # cannotCalculateChanges
    assert fresh.get("Identity", "I1") is None


def test_old_tombstones_are_forgotten_and_their_states_expire(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(objects, "MAX_TOMBSTONES", 2)
    store = ObjectStore.open(tmp_path)
    start = store.state("EmailSubmission")
    for n in range(5):
        store.put("EmailSubmission", {"id": f"U{n}"})
        store.drop("EmailSubmission", f"U{n}")
    assert store.parse_state("EmailSubmission", start) is None
    recent = store.state("EmailSubmission")
    assert store.parse_state("EmailSubmission", recent) is not None
