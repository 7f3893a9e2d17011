"""huren.store.sealing.seal_rows: one envelope per (institution, ID number) within a batch of
reminder rows, every row still opening to its own values with its blind index."""

from __future__ import annotations

from huren.crypto.aead import FieldCipher
from huren.store import sealing

A, B = "65010219900307123X", "650102198512120017"


def test_one_envelope_per_patient_and_institution_within_a_batch() -> None:
    f = FieldCipher({1: b"k" * 32}, 1, b"i" * 32)
    rows = [
        {"org_code": "H1", "id_type_code": "01", "id_no": A, "action": "reminder", "item_codes": "3001"},
        {"org_code": "H1", "id_type_code": "01", "id_no": A, "action": "reminder", "item_codes": "3002"},
        {"org_code": "H1", "id_type_code": "01", "id_no": B, "action": "reminder", "item_codes": "3001"},
        {"org_code": "H2", "id_type_code": "01", "id_no": A, "action": "view", "item_codes": ""},
        {"org_code": "H1", "id_type_code": "01", "id_no": None, "action": "view", "item_codes": ""},
    ]
    out = sealing.seal_rows(f, "reminder_log", rows)
    assert out[0]["id_no"] == out[1]["id_no"] != out[2]["id_no"]
    assert out[3]["id_no"] not in (out[0]["id_no"], out[2]["id_no"])  # another institution: its own envelope
    assert out[0]["id_no_bidx"] == out[3]["id_no_bidx"] == f.blind(A, "id_no") != out[2]["id_no_bidx"]
    assert out[4]["id_no"] is None and out[4]["id_no_bidx"] is None
    for row, stored in zip(rows, out, strict=True):
        assert sealing.open_row(f, "reminder_log", stored) == row
        assert A not in str(stored) and B not in str(stored)
