"""The presentation contexts each accepted association starts from, copied without ``deepcopy``.

pynetdicom 3.0.4 gives every association it accepts its own copy of the AE's supported contexts
(``RequestHandler._create_association``: ``deepcopy(self.server.contexts)``). The AE supports
~180 abstract syntaxes (every storage SOP class, each with ~30 transfer syntaxes), and deepcopy
walks every UID of them: 30–90 ms per association here — a C-ECHO association took 30–45 ms, a
sender that opens one association per study or series paid it each time.

:func:`install` gives that module a ``deepcopy`` that copies a list of
:class:`~pynetdicom.presentation.PresentationContext` field by field: a new object per context
with the same attributes and its own transfer-syntax list (every other attribute is an int, a
bool, None or a UID — immutable ``str``s — so this is what deepcopy makes). Anything else is
deep-copied as before.
"""

from __future__ import annotations

import copy
from typing import Any

import pynetdicom.transport as _transport
from pynetdicom.presentation import PresentationContext


def copy_contexts(obj: Any, memo: dict[int, Any] | None = None) -> Any:
    if isinstance(obj, list) and all(type(cx) is PresentationContext for cx in obj):
        out = []
        for cx in obj:
            new = PresentationContext.__new__(PresentationContext)
            new.__dict__.update(cx.__dict__)
            new._transfer_syntax = list(cx._transfer_syntax)
            out.append(new)
        return out
    return copy.deepcopy(obj, memo)


def install() -> None:
    """Idempotent; process-wide (every association pynetdicom accepts in this process)."""
    setattr(_transport, "deepcopy", copy_contexts)  # noqa: B010 (the module's own name, replaced)
