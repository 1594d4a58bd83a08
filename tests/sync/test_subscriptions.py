"""PushSubscription records: URL policy (RFC 8620 §7.2, §8.6) and persistence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maildir_jmap.sync.subscriptions import SubscriptionStore, url_problem


@pytest.mark.parametrize(
    "url",
    [
        "https://push.example.net/abc",
        "https://push.example.net:8443/abc?x=1",
        "https://93.184.216.34/x",
        "https://[2606:4700::1111]/x",
    ],
)
def test_public_https_urls_are_accepted_rfc8620_7_2(url: str) -> None:
    assert url_problem(url, allow_private=False, allow_http=False) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://push.example.net/abc", "https://"),
        ("ftp://push.example.net/abc", "https://"),
        ("https:///nohost", "host"),
        ("https://user:pw@push.example.net/", "credentials"),
        ("https://push.example.net:99999/", "valid URL"),
        ("https://localhost/x", "local"),
        ("https://printer.local/x", "local"),
        ("https://127.0.0.1/x", "non-public"),
        ("https://10.1.2.3/x", "non-public"),
        ("https://192.168.0.1/x", "non-public"),
        ("https://169.254.169.254/latest/meta-data", "non-public"),  # cloud metadata
        ("https://[::1]/x", "non-public"),
        ("https://[fe80::1]/x", "non-public"),
        ("https://[::ffff:127.0.0.1]/x", "non-public"),
        ("https://0.0.0.0/x", "non-public"),
        ("https://127.1/x", "non-public"),
        ("https://0x7f000001/x", "non-public"),
        ("https://2130706433/x", "non-public"),
        ("https://0177.0.0.1/x", "non-public"),
        ("https://10.1/x", "non-public"),
        ("https://localhost./x", "local"),
        ("https://LOCALHOST/x", "local"),
        ("https://[::ffff:7f00:1]/x", "non-public"),
        ("https://[2002:7f00:1::]/x", "non-public"),  # 6to4 of 127.0.0.1
        ("https://0/x", "non-public"),
        ("https://example.net/" + "a" * 3000, "longer"),
    ],
)
def test_hostile_or_malformed_urls_are_refused_rfc8620_8_6(url: str, reason: str) -> None:
    problem = url_problem(url, allow_private=False, allow_http=False)
    assert problem is not None
    assert reason in problem


def test_private_targets_and_http_only_when_configured() -> None:
    assert url_problem("http://127.0.0.1:9/x", allow_private=True, allow_http=True) is None
    assert url_problem("http://127.0.0.1:9/x", allow_private=True, allow_http=False)
    assert url_problem("https://127.0.0.1:9/x", allow_private=False, allow_http=True)


def values(credential: str = "basic:alice:f00", expires: int = 2_000_000_000) -> dict[str, object]:
    return {
        "user": "alice",
        "credential": credential,
        "device_client_id": "dev1",
        "url": "https://push.example.net/secret-endpoint",
        "keys": {"p256dh": "PUBKEY", "auth": "AUTHSECRET"},
        "expires": expires,
        "types": ["Email"],
    }


def test_subscriptions_survive_a_restart(tmp_path: Path) -> None:
    store = SubscriptionStore.open(tmp_path, "KEY1", lambda c: True)
    sub = store.create(**values())
    store.update(sub.id, client_code=sub.server_code)
    again = SubscriptionStore.open(tmp_path, "KEY1", lambda c: True)
    loaded = again.get(sub.id)
    assert loaded is not None
    assert loaded.verified
    assert loaded.url == sub.url
    assert (tmp_path / "push-subscriptions.json").stat().st_mode & 0o077 == 0


def test_destroy_erases_url_and_keys_from_storage_rfc8620_7_2(tmp_path: Path) -> None:
    store = SubscriptionStore.open(tmp_path, "KEY1", lambda c: True)
    sub = store.create(**values())
    store.destroy(sub.id)
    text = (tmp_path / "push-subscriptions.json").read_text()
    assert "secret-endpoint" not in text
    assert "AUTHSECRET" not in text
    assert json.loads(text) == {"subscriptions": []}


def test_prune_drops_expired_revoked_and_other_key_rfc9749_5(tmp_path: Path) -> None:
    alive = {"basic:alice:f00"}
    store = SubscriptionStore.open(tmp_path, "KEY1", lambda c: c in alive)
    keep = store.create(**values())
    expired = store.create(**values(expires=100))
    revoked = store.create(**values(credential="token:dead"))
    # Made under an earlier VAPID key: the push service would refuse our pushes.
    old_key = SubscriptionStore.open(tmp_path, "KEY0", lambda c: True).create(**values())
    store = SubscriptionStore.open(tmp_path, "KEY1", lambda c: c in alive)
    gone = store.prune(now=1000)
    assert sorted(gone) == sorted([expired.id, revoked.id, old_key.id])
    assert [s.id for s in store.all()] == [keep.id]


def test_wrong_code_is_not_verified(tmp_path: Path) -> None:
    store = SubscriptionStore.open(tmp_path, "KEY1", lambda c: True)
    sub = store.create(**values())
    assert not sub.verified
    wrong = store.update(sub.id, client_code="0" * 32)
    assert wrong is not None
    assert not wrong.verified
