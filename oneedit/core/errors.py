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


class TypeClashError(ParseError):
    """The request reads as a fact, but a named entity is of a type the relation does not take
    ("Tim Cook is the capital of France": a Person as a capital)."""


class InputError(ParseError):
    """The request text itself is unusable: empty, too long, binary or with control characters."""


class LLMOutputError(ParseError):
    """The LLM parser's model gave no valid structured output, even after one retry."""


class UserError(OneEditError):
    """A user name or role is invalid, or the user is unknown, deactivated or already exists."""


class UserExistsError(UserError):
    """A user of that name already exists (names are never reused: the ledger records authors by name)."""


class PermissionDenied(OneEditError):
    """The user's role does not allow the action; the message names the role needed."""

    exit_code = 77  # sysexits EX_NOPERM


class RateLimitError(OneEditError):
    """The user made as many edits in the last minute as the role allows; the hint says how many."""

    exit_code = 75  # sysexits EX_TEMPFAIL: try again later


class ProtectedFactError(OneEditError):
    """A protected fact would change, or an unprotect named a fact that is not protected."""


class PolicyError(WorkspaceError):
    """A trust, rate-limit or safety setting is unknown or out of range."""
