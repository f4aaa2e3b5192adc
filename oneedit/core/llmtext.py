"""Text out of chat-model replies, shared by the interpreter's LLM parser and the safety moderator.

No langchain import here: a reply is read through its ``content`` and ``tool_calls`` attributes.
"""

from __future__ import annotations

import json


def message_text(message) -> str:
    """A chat reply as text: its content (content blocks joined), or its tool calls' arguments as
    JSON when it has no content."""
    if message is None:
        return ""
    content = getattr(message, "content", message)
    if isinstance(content, list):  # content blocks
        content = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    calls = getattr(message, "tool_calls", None)
    if calls and not content:
        return json.dumps([c.get("args") for c in calls], default=str)
    return str(content)


def error_summary(exc: object, limit: int = 500) -> str:
    """The first lines of an error (a parser's or a provider's), without troubleshooting links."""
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip() and "troubleshooting" not in ln.lower()]
    return " ".join(lines[:3])[:limit] if lines else type(exc).__name__
