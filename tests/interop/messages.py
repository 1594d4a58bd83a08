"""Messages the interop tests upload: non-ASCII headers in encoded words, an
RFC 2231 file name, a binary attachment."""

from __future__ import annotations

import base64
import random

ATTACHMENT = random.Random(8621).randbytes(20_000)
_ENCODED = base64.encodebytes(ATTACHMENT).decode().replace("\n", "\r\n")

MESSAGE = (
    "From: =?UTF-8?Q?Zo=C3=AB_=C3=98deg=C3=A5rd?= <zoe@example.no>\r\n"
    "To: Alice <alice@example.org>\r\n"
    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe,_=C3=9Cbersicht_und_ein_Foto?=\r\n"
    "Date: Tue, 01 Dec 2026 09:30:00 +0100\r\n"
    "Message-ID: <interop-upload-1@example.no>\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="outer"\r\n'
    "\r\n"
    "--outer\r\n"
    'Content-Type: multipart/alternative; boundary="alt"\r\n'
    "\r\n"
    "--alt\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Hallo Alice, anbei die Übersicht.\r\n"
    "--alt\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "<p>Hallo Alice, anbei die <b>Übersicht</b>.</p>\r\n"
    "--alt--\r\n"
    "--outer\r\n"
    "Content-Type: application/pdf\r\n"
    "Content-Disposition: attachment;\r\n"
    " filename*=utf-8''%C3%9Cbersicht%202026.pdf\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n" + _ENCODED + "--outer--\r\n"
).encode()
