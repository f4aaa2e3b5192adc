"""OneEdit: a neural-symbolic knowledge-editing system.

Importing this package is cheap; the KG stores, model code and CLI load their dependencies
when first used.
"""

__version__ = "0.1.0"

__all__ = ["Editor", "EditResult", "OneEdit"]


def __getattr__(name: str):
    # lazy: ``import oneedit`` stays cheap, ``from oneedit import Editor`` loads what it needs
    if name in ("Editor", "EditResult"):
        from oneedit import api

        return getattr(api, name)
    if name == "OneEdit":
        from oneedit.system import OneEdit

        return OneEdit
    raise AttributeError(f"module 'oneedit' has no attribute {name!r}")
