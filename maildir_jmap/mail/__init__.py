"""RFC 8621 datatypes. Each module adds its methods to the registry built here;
only what is fully implemented is registered (and so advertised)."""

from __future__ import annotations

from maildir_jmap.core.dispatch import CORE_METHODS, Registry


def build_registry() -> Registry:
    return Registry(CORE_METHODS)
