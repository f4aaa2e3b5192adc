"""KG store backends behind one interface, chosen by name from a small registry."""

from __future__ import annotations

from collections.abc import Callable

from controller.stores.base import KGStore, Transaction

_REGISTRY: dict[str, Callable[..., KGStore]] = {}


def register(name: str, factory: Callable[..., KGStore]) -> None:
    _REGISTRY[name] = factory


def open_store(name: str, **options) -> KGStore:
    """Open a store by registry name (``embedded``; more backends register themselves)."""
    if name not in _REGISTRY:
        from oneedit.core import StoreError

        raise StoreError(f"Unknown store backend {name!r}.",
                         hint=f"Available backends: {', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[name](**options)


def available() -> list[str]:
    return sorted(_REGISTRY)


def _embedded(**options) -> KGStore:
    from controller.stores.embedded import EmbeddedStore

    return EmbeddedStore(**options)


def _neo4j(**options) -> KGStore:
    from controller.stores.neo4j import Neo4jStore

    return Neo4jStore(**options)


register("embedded", _embedded)
register("neo4j", _neo4j)

__all__ = ["KGStore", "Transaction", "available", "open_store", "register"]
