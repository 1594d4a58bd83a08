"""jmap-jam (npm), a third-party JavaScript JMAP client, run by Node against the
real server over TLS with a Bearer app token. The steps live in
jam/scenario.mjs (asserting with node:assert); here we start them and check what
they did on the server's side: the Maildir, the SMTP sink, the index."""

from __future__ import annotations

import email
import email.policy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.interop.conftest import ADDRESS, Deployment
from tests.interop.messages import ATTACHMENT, MESSAGE

JAM = Path(__file__).parent / "jam"


def run_step(deployment: Deployment, step: str, tmp_path: Path) -> Any:
    node = shutil.which("node")
    assert node, "node is missing: scripts/test installs it (Debian package nodejs)"
    assert (JAM / "node_modules" / "jmap-jam").is_dir(), "run scripts/test (npm ci in jam/)"
    (tmp_path / "message.eml").write_bytes(MESSAGE)
    (tmp_path / "attachment.bin").write_bytes(ATTACHMENT)
    env = {
        **os.environ,
        "JAM_SESSION_URL": deployment.url + "/.well-known/jmap",
        "JAM_TOKEN": deployment.token,
        "JAM_ADDRESS": ADDRESS,
        "JAM_MESSAGE": str(tmp_path / "message.eml"),
        "JAM_ATTACHMENT": str(tmp_path / "attachment.bin"),
        "NODE_EXTRA_CA_CERTS": str(deployment.ca),
    }
    done = subprocess.run(
        [node, "scenario.mjs", step],
        cwd=JAM,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_session_and_mailboxes(deployment: Deployment, tmp_path: Path) -> None:
    result = run_step(deployment, "session", tmp_path)
    assert {"inbox", "sent", "drafts", "trash", "archive"} <= set(result["roles"])
    assert result["apiUrl"] == deployment.url + "/jmap/api/"


def test_list_view_with_back_references(deployment: Deployment, tmp_path: Path) -> None:
    result = run_step(deployment, "listView", tmp_path)
    assert result["total"] > 25
    assert any(not s.isascii() for s in result["subjects"])


def test_upload_import_and_download_are_byte_identical(
    deployment: Deployment, tmp_path: Path
) -> None:
    result = run_step(deployment, "uploadImportDownload", tmp_path)
    assert result["subject"] == "Grüße, Übersicht und ein Foto"
    assert result["from"] == [{"name": "Zoë Ødegård", "email": "zoe@example.no"}]
    assert result["name"] == "Übersicht 2026.pdf"
    files = [*(deployment.maildir / "cur").iterdir(), *(deployment.maildir / "new").iterdir()]
    assert MESSAGE.replace(b"\r\n", b"\n") in [p.read_bytes() for p in files]


def test_keywords_moves_and_changes(deployment: Deployment, tmp_path: Path) -> None:
    run_step(deployment, "keywordsMovesChanges", tmp_path)
    # What Dovecot sees: the flag as a letter of a file name in INBOX, the moved
    # message's file in .Archive.
    flags = [p.name.rpartition(":2,")[2] for p in (deployment.maildir / "cur").iterdir()]
    assert any("F" in f for f in flags)


def test_draft_and_submission_reach_the_smtp_server(deployment: Deployment, tmp_path: Path) -> None:
    run_step(deployment, "draftAndSend", tmp_path)
    (message,) = deployment.smtp.handler.wait(1)
    assert message.rcpt_tos == ["zoe@example.no"]
    assert message.mail_from == ADDRESS
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert parsed["Subject"] == "Grüße vom Node-Client"
    assert "Gruß" in parsed.get_content()
    # onSuccessUpdateEmail moved the draft into Sent on disk, where IMAP finds it.
    sent = [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)["Subject"]
        for p in (deployment.maildir / ".Sent" / "cur").iterdir()
    ]
    assert "Grüße vom Node-Client" in sent


def test_search_and_snippets(deployment: Deployment, tmp_path: Path) -> None:
    result = run_step(deployment, "searchSnippets", tmp_path)
    assert result["hits"] > 0
    assert result["marked"] > 0


def test_event_source_push(deployment: Deployment, tmp_path: Path) -> None:
    result = run_step(deployment, "push", tmp_path)
    assert result["events"] >= 1
