"""Web Push message encryption (RFC 8291 over RFC 8188 ``aes128gcm``) and VAPID
(RFC 8292), on the primitives of ``cryptography``.

Why by hand: the framing is a few dozen lines over ECDH, HKDF and AES-GCM, all
from pyca/cryptography; the Python web-push packages wrap the same calls with
more surface (and their own HTTP clients). The tests check every message against
an independent implementation (``http_ece``) and verify the VAPID signature.
"""

from __future__ import annotations

import base64
import os
import struct
import time
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC

from maildir_jmap.durable import replace_file

RECORD_SIZE = 4096
"""RFC 8188 §2 record size; our payloads (a StateChange) fit one record."""
KEY_LENGTH = 16
NONCE_LENGTH = 12
TAG_LENGTH = 16
VAPID_LIFETIME = 12 * 3600
"""RFC 8292 §2: ``exp`` MUST NOT be more than 24 hours ahead."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """URL-safe base64 with or without padding (clients send both)."""
    if not isinstance(text, str) or not text.isascii():
        raise ValueError("not base64url")
    stripped = text.rstrip("=")
    if any(c in "+/" for c in stripped):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))


def client_public_key(p256dh: str) -> ec.EllipticCurvePublicKey:
    """The user agent's ECDH key (RFC 8291 §3.1: an uncompressed P-256 point)."""
    raw = b64url_decode(p256dh)
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError("p256dh must be an uncompressed P-256 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)


def check_client_keys(keys: object) -> str | None:
    """What is wrong with a PushSubscription's ``keys`` (RFC 8620 §7.2), or None."""
    if not isinstance(keys, dict) or set(keys) != {"p256dh", "auth"}:
        return "keys must be an object with exactly p256dh and auth"
    try:
        client_public_key(keys["p256dh"])
    except (ValueError, TypeError):
        return "keys/p256dh is not a base64url P-256 public key"
    try:
        auth = b64url_decode(keys["auth"])
    except (ValueError, TypeError):
        return "keys/auth is not base64url"
    if len(auth) != 16:
        return "keys/auth must be 16 bytes (RFC 8291 §3.2)"
    return None


def _hmac(key: bytes, data: bytes) -> bytes:
    mac = HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 with SHA-256, for lengths up to one block (all RFC 8291 needs)."""
    prk = _hmac(salt, ikm)
    return _hmac(prk, info + b"\x01")[:length]


def encrypt(
    plaintext: bytes,
    p256dh: str,
    auth: str,
    *,
    salt: bytes | None = None,
    sender_key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """``plaintext`` as one RFC 8188 ``aes128gcm`` record for the user agent whose
    keys are ``p256dh`` and ``auth`` (RFC 8291 §3.4). ``salt`` and ``sender_key``
    are fresh per message unless given (tests pin them)."""
    ua_public = client_public_key(p256dh)
    auth_secret = b64url_decode(auth)
    sender_key = sender_key or ec.generate_private_key(ec.SECP256R1())
    salt = salt or os.urandom(16)
    ua_raw = ua_public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    as_raw = sender_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    try:
        shared = sender_key.exchange(ec.ECDH(), ua_public)
    except InvalidKey as exc:  # pragma: no cover - from_encoded_point checked the point
        raise ValueError("unusable p256dh key") from exc
    # §3.3: combine the ECDH secret with the auth secret, keyed to both public keys.
    ikm = _hkdf(auth_secret, shared, b"WebPush: info\x00" + ua_raw + as_raw, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", KEY_LENGTH)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", NONCE_LENGTH)
    if len(plaintext) + 1 + TAG_LENGTH > RECORD_SIZE:
        raise ValueError("push payload larger than one record")
    # RFC 8188 §2: the last record's plaintext ends with the delimiter 0x02.
    ciphertext = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    header = salt + struct.pack("!IB", RECORD_SIZE, len(as_raw)) + as_raw
    return header + ciphertext


# -- VAPID (RFC 8292) ------------------------------------------------------------


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The server's VAPID signing key, made on first use (PEM, mode 0600)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        replace_file(path, pem)
        return key
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError(f"{path} is not a P-256 private key")
    return key


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The application server key as clients pass it to the push service
    (RFC 8292 §3.2 ``k``; RFC 9749 ``applicationServerKey``)."""
    raw = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(raw)


def vapid_authorization(
    key: ec.EllipticCurvePrivateKey, endpoint: str, subject: str, now: float | None = None
) -> str:
    """The ``Authorization: vapid t=..., k=...`` value for a POST to ``endpoint``:
    an ES256 JWT whose ``aud`` is the endpoint's origin (RFC 8292 §2, §3)."""
    parts = urlsplit(endpoint)
    audience = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    issued = int(time.time() if now is None else now)
    header = b64url(orjson.dumps({"typ": "JWT", "alg": "ES256"}))
    claims = b64url(orjson.dumps({"aud": audience, "exp": issued + VAPID_LIFETIME, "sub": subject}))
    signing_input = f"{header}.{claims}".encode("ascii")
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    signature = b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return f"vapid t={header}.{claims}.{signature}, k={public_key_b64(key)}"
