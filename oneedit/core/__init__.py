"""Core types and errors shared across OneEdit's modules (no heavy imports)."""

from oneedit.core.errors import (
    ConstraintViolation,
    ImportFormatError,
    OneEditError,
    RevisionError,
    SchemaError,
    StoreError,
    UnknownEntityError,
    UnknownRelationError,
    WorkspaceError,
)
from oneedit.core.types import (
    META_PREDICATES,
    Change,
    Diff,
    Entity,
    EntityMatch,
    Revision,
    Triple,
    is_valid_id,
)
from oneedit.core.slug import slugify

__all__ = [
    "META_PREDICATES",
    "Change",
    "ConstraintViolation",
    "Diff",
    "Entity",
    "EntityMatch",
    "ImportFormatError",
    "OneEditError",
    "Revision",
    "RevisionError",
    "SchemaError",
    "StoreError",
    "Triple",
    "UnknownEntityError",
    "UnknownRelationError",
    "WorkspaceError",
    "is_valid_id",
    "slugify",
]
