"""Integrations of OneEdit with agent frameworks.

:mod:`oneedit.integrations.langchain`: LangChain tools (``edit_knowledge``, ``ask_knowledge``,
``rollback_edit``) over the HTTP service (:class:`oneedit.client.Client`) or an in-process
:class:`oneedit.system.OneEdit`.
"""
