"""OneEdit: a neural-symbolic knowledge-editing system.

Importing this package is cheap; the KG stores, model code and CLI load their dependencies
when first used.
"""

__version__ = "0.1.0"
