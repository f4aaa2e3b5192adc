"""Error types. Each carries what went wrong and what the person can do about it."""

from __future__ import annotations


class OneEditError(Exception):
    """Base error: ``message`` says what was wrong, ``hint`` what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, *, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or {}

    def to_dict(self) -> dict:
        out = {"error": type(self).__name__, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class WorkspaceError(OneEditError):
    """The workspace is missing, locked or malformed."""


class SchemaError(OneEditError):
    """The schema file is malformed, or a fact does not fit the schema."""


class UnknownEntityError(OneEditError):
    """A name did not resolve to an entity."""


class UnknownRelationError(OneEditError):
    """A name did not resolve to a relation."""


class ConstraintViolation(OneEditError):
    """A change would break a schema constraint (cardinality, types, inverses)."""


class ImportFormatError(OneEditError):
    """An import file is malformed; ``details`` names the file and line."""


class RevisionError(OneEditError):
    """A revision id is unknown, or a revert cannot be applied cleanly."""


class StoreError(OneEditError):
    """The storage backend failed."""


class ParseError(OneEditError):
    """A request could not be turned into intents; ``details`` says which part and why."""


class InputError(ParseError):
    """The request text itself is unusable: empty, too long, binary or with control characters."""


class LLMOutputError(ParseError):
    """The LLM parser's model gave no valid structured output, even after one retry."""
