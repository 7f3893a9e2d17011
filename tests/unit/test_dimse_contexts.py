"""Each accepted association's presentation contexts: copied field by field as deepcopy would."""

from __future__ import annotations

import copy

from huren.dimse import contexts
from huren.dimse.server import build_ae


def test_the_copy_equals_deepcopy_and_is_independent() -> None:
    supported = build_ae("HUREN").supported_contexts
    assert len(supported) > 150
    mine, theirs = contexts.copy_contexts(supported), copy.deepcopy(supported)
    assert [vars(a) for a in mine] == [vars(b) for b in theirs]
    assert all(a is not b for a, b in zip(mine, supported, strict=True))
    mine[0].transfer_syntax.append("1.2.3.4")  # type: ignore[arg-type]
    mine[0].context_id = 99
    assert "1.2.3.4" not in supported[0].transfer_syntax and supported[0].context_id is None
    assert contexts.copy_contexts({"a": [1]}) == {"a": [1]}  # anything else: deepcopy


def test_installed_where_pynetdicom_copies_them() -> None:
    import pynetdicom.transport as transport

    from huren.dimse.server import configure_pynetdicom

    configure_pynetdicom()
    assert transport.deepcopy is contexts.copy_contexts  # type: ignore[attr-defined]
