"""Interpreter: text (natural language, CSV, JSONL, RDF) -> typed edit intents.

The rule parser and LLM parser arrive with the interpreter issue; structured file readers for
the KG already live in ``controller.io``.
"""
