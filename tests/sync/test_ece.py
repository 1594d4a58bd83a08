"""Web Push encryption (RFC 8291) and VAPID (RFC 8292), checked against an
independent implementation (http_ece) and by verifying signatures."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import http_ece
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from maildir_jmap.sync import ece


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def user_agent() -> tuple[ec.EllipticCurvePrivateKey, dict[str, str], bytes]:
    """A browser's subscription keys: the ECDH key pair and the auth secret."""
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    auth = os.urandom(16)
    return private, {"p256dh": b64(public), "auth": b64(auth)}, auth


UA_PRIVATE, UA_KEYS, UA_AUTH = user_agent()


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=4000))
def test_http_ece_decrypts_what_we_encrypt_rfc8291_4(payload: bytes) -> None:
    body = ece.encrypt(payload, UA_KEYS["p256dh"], UA_KEYS["auth"])
    plain = http_ece.decrypt(body, private_key=UA_PRIVATE, auth_secret=UA_AUTH, version="aes128gcm")
    assert plain == payload
    # RFC 8291 §4: the keyid is the sender's 65-byte public key, rs is 4096.
    assert body[16:21] == b"\x00\x00\x10\x00\x41"


def test_each_message_gets_a_fresh_salt_and_sender_key_rfc8291_3_4() -> None:
    one = ece.encrypt(b"same", UA_KEYS["p256dh"], UA_KEYS["auth"])
    two = ece.encrypt(b"same", UA_KEYS["p256dh"], UA_KEYS["auth"])
    assert one[:16] != two[:16]
    assert one[21:86] != two[21:86]


def test_payload_larger_than_one_record_is_refused() -> None:
    with pytest.raises(ValueError, match="record"):
        ece.encrypt(b"x" * 4080, UA_KEYS["p256dh"], UA_KEYS["auth"])


def test_wrong_auth_secret_does_not_decrypt() -> None:
    body = ece.encrypt(b"secret", UA_KEYS["p256dh"], UA_KEYS["auth"])
    with pytest.raises(Exception):  # noqa: B017, PT011 - http_ece raises InvalidTag
        http_ece.decrypt(body, private_key=UA_PRIVATE, auth_secret=b"\0" * 16)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (None, "exactly p256dh and auth"),
        ({"p256dh": UA_KEYS["p256dh"]}, "exactly p256dh and auth"),
        ({**UA_KEYS, "extra": "x"}, "exactly p256dh and auth"),
        ({**UA_KEYS, "p256dh": "not+base64/url"}, "p256dh"),
        ({**UA_KEYS, "p256dh": b64(b"\x04" + b"\x01" * 64)}, "p256dh"),  # not on the curve
        ({**UA_KEYS, "p256dh": b64(b"\x02" + b"\x01" * 32)}, "p256dh"),  # compressed
        ({**UA_KEYS, "auth": b64(b"short")}, "16 bytes"),
        ({**UA_KEYS, "auth": 12}, "auth"),
    ],
)
def test_client_keys_are_checked_rfc8620_7_2(keys: object, message: str) -> None:
    problem = ece.check_client_keys(keys)
    assert problem is not None
    assert message in problem


def test_good_client_keys_pass_padded_or_not() -> None:
    assert ece.check_client_keys(UA_KEYS) is None
    padded = {k: v + "=" * (-len(v) % 4) for k, v in UA_KEYS.items()}
    assert ece.check_client_keys(padded) is None


def test_vapid_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "vapid-key.pem"
    key = ece.load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = ece.load_or_create_key(path)
    assert ece.public_key_b64(key) == ece.public_key_b64(again)
    raw = base64.urlsafe_b64decode(ece.public_key_b64(key) + "=")
    assert len(raw) == 65
    assert raw[0] == 4


def test_vapid_key_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "vapid-key.pem"
    other = ec.generate_private_key(ec.SECP384R1())
    path.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match="P-256"):
        ece.load_or_create_key(path)


def verify_vapid(header: str, public_key: str) -> dict[str, object]:
    """Check an ``Authorization: vapid`` value as a push service would; the claims."""
    scheme, _, params = header.partition(" ")
    assert scheme == "vapid"
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    assert fields["k"] == public_key
    head, claims, signature = fields["t"].split(".")
    raw_sig = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    der = encode_dss_signature(
        int.from_bytes(raw_sig[:32], "big"), int.from_bytes(raw_sig[32:], "big")
    )
    key = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), base64.urlsafe_b64decode(public_key + "=")
    )
    key.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    decoded_head = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    assert decoded_head == {"typ": "JWT", "alg": "ES256"}
    result: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4))
    )
    return result


def test_vapid_token_is_signed_for_the_push_origin_rfc8292_2(tmp_path: Path) -> None:
    key = ece.load_or_create_key(tmp_path / "k.pem")
    header = ece.vapid_authorization(
        key, "https://push.example.net:8443/wpush/v2/abc?x=1", "mailto:ops@example.org", now=1000
    )
    claims = verify_vapid(header, ece.public_key_b64(key))
    assert claims == {
        "aud": "https://push.example.net:8443",
        "exp": 1000 + 12 * 3600,  # §2: at most 24 hours ahead
        "sub": "mailto:ops@example.org",
    }
