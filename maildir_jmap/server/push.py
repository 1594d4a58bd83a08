"""Push, as the server runs it: the hub every account's changes reach, the
PushSubscriptions with their VAPID key (RFC 8620 §7.2, RFC 8292), the Web Push
sender, and the short-lived EventSource tokens for browsers."""

from __future__ import annotations

import socket
from collections.abc import Callable

from maildir_jmap.config import Config
from maildir_jmap.server.pushtoken import PushTokens
from maildir_jmap.sync import ece
from maildir_jmap.sync.hub import Hub
from maildir_jmap.sync.push_subscription import PushAccess
from maildir_jmap.sync.subscriptions import SubscriptionStore
from maildir_jmap.sync.webpush import WebPush

WEBPUSH_VAPID = "urn:ietf:params:jmap:webpush-vapid"
"""RFC 9749 §3: the Session capability carrying the VAPID public key."""


class PushService:
    def __init__(self, config: Config, credential_alive: Callable[[str], bool]) -> None:
        self.config = config
        self.hub = Hub()
        self.tokens = PushTokens(config.state_dir / "push-token.key")
        self._key = ece.load_or_create_key(
            config.vapid_key_file or config.state_dir / "vapid-key.pem"
        )
        self.vapid_public_key = ece.public_key_b64(self._key)
        self.subscriptions = SubscriptionStore.open(
            config.state_dir, self.vapid_public_key, credential_alive
        )
        self.webpush: WebPush | None = None

    def access(self, user: str, credential: str) -> PushAccess:
        """What PushSubscription/get and /set may do for this user and credential."""
        return PushAccess(
            self.subscriptions,
            user,
            credential,
            allow_private=self.config.push_allow_private_targets,
            allow_http=self.config.push_allow_http,
            max_lifetime=self.config.push_max_lifetime,
        )

    def subscribed_users(self) -> set[str]:
        """Users with a verified subscription: their accounts stay open."""
        return {s.user for s in self.subscriptions.all() if s.verified}

    def subject(self) -> str:
        """VAPID ``sub`` (RFC 8292 §2.1): whom a push service can contact."""
        if self.config.push_subject:
            return self.config.push_subject
        if self.config.public_url and self.config.public_url.startswith("https://"):
            return self.config.public_url
        return f"mailto:postmaster@{socket.getfqdn()}"

    async def start(self, owner_of: Callable[[str], str | None]) -> None:
        """Start sending StateChanges to subscriptions (sync/webpush.py)."""
        sender = WebPush(
            self.subscriptions,
            self.hub,
            self._key,
            self.subject(),
            owner_of,
            allow_private=self.config.push_allow_private_targets,
        )
        await sender.start()
        self.webpush = sender

    async def stop(self) -> None:
        if self.webpush is not None:
            await self.webpush.stop()
            self.webpush = None
