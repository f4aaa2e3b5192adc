"""The API's request bodies (unknown fields are refused: ``extra="forbid"``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FactIn(_Body):
    op: Literal["assert", "replace", "retract"] = "assert"
    subject: str = Field(min_length=1, max_length=300, description="entity id, label or alias")
    relation: str = Field(min_length=1, max_length=100, description="relation id or phrase")
    object: str | None = Field(None, max_length=300, description="entity id, label or alias; a new name makes a new entity")
    subject_type: str | None = Field(None, max_length=100, description="type of a new subject (default: from the relation's domain)")
    object_type: str | None = Field(None, max_length=100, description="type of a new object (default: from the relation's range)")


class EditIn(_Body):
    text: str | None = Field(None, max_length=4000, description='a request in plain language, e.g. "The capital of France is Lyon"')
    triples: list[FactIn] | None = Field(None, max_length=200, description="structured facts instead of text")
    method: Literal["memit", "grace"] | None = Field(None, description="model-editing method (default: the workspace's policy)")
    dry_run: StrictBool = Field(False, description="return the plan (conflicts, KG diff, derived facts, checks) and change nothing")
    request_key: str | None = Field(None, max_length=128, description="idempotency key: a retried request with the same key returns the first one's edit")


class FocusIn(_Body):
    subject: str = Field(min_length=1, max_length=300, description="entity id the last turn was about")
    relation: str = Field(min_length=1, max_length=100, description="relation id the last turn was about")


class TextIn(_Body):
    text: str = Field(min_length=1, max_length=4000)
    focus: FocusIn | None = Field(None, description='the last question or edit of the conversation, so a follow-up '
                                                    '("Change it to Cusco", "and Chile\'s?") reads against it')


class RollbackIn(_Body):
    cascade: StrictBool = False


class RejectIn(_Body):
    reason: str = Field("", max_length=1000)


class ApproveIn(_Body):
    method: Literal["memit", "grace"] | None = None


class ProtectIn(_Body):
    subject: str = Field(min_length=1, max_length=300)
    relation: str = Field(min_length=1, max_length=100)
    object: str = Field(min_length=1, max_length=300)
    reason: str = Field("", max_length=1000)
    remove: StrictBool = False


class UserIn(_Body):
    name: str = Field(min_length=1, max_length=64)
    role: Literal["viewer", "editor", "curator", "admin"] = "editor"


class UserPatch(_Body):
    role: Literal["viewer", "editor", "curator", "admin"] | None = None
    active: StrictBool | None = None
