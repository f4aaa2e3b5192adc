"""Crash points for testing the edit journal.

``fault("stage")`` kills the process with SIGKILL when ``$ONEEDIT_CRASH_AT`` names that stage. It is
how ``tests/test_crash.py`` proves that an edit interrupted at any stage leaves the ledger, the KG
and the model in agreement after a restart. With the variable unset (always, outside those tests)
it does nothing but one dictionary lookup.

Stages, in the order an edit reaches them: ``ledger`` (row written, nothing applied), ``kg_apply``
(store changed, revision not yet committed), ``kg`` (revision committed), ``model_delta`` (MEMIT
delta file written, manifest not yet), ``model`` (model edit saved), ``applied`` (ledger says
applied); rollbacks: ``rollback_kg`` (KG reverted), ``rollback_model`` (model undone).
"""

from __future__ import annotations

import os
import signal

ENV = "ONEEDIT_CRASH_AT"


def fault(stage: str) -> None:
    if os.environ.get(ENV) == stage:
        os.kill(os.getpid(), signal.SIGKILL)
