"""The demo Maildir is a valid Maildir++ tree with the promised content."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

from maildir_jmap.demo import FOLDERS, create_demo_maildir


def test_demo_maildir_has_folders_thread_attachment_and_unicode(tmp_path: Path) -> None:
    root = create_demo_maildir(tmp_path / "M", user="zoe")
    for name in FOLDERS:
        assert (root / f".{name}" / "maildirfolder").exists()
    files = [p for p in root.rglob("*") if p.parent.name in ("cur", "new") and p.is_file()]
    messages = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in files]
    subjects = {str(m["Subject"]) for m in messages}
    assert "Grüße aus Köln 📷" in subjects
    assert any(m["In-Reply-To"] for m in messages)
    assert any(part.get_filename() == "Kölner Dom.png" for m in messages for part in m.walk())
    assert (root / "subscriptions").read_text().startswith("V\t2\n\n")
    assert len(list((root / "new").iterdir())) == 1
