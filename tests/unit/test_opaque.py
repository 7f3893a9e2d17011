"""Opaque report refs (huren.crypto.opaque, huren.services.refs; issue 10 §1.11)."""

from __future__ import annotations

from itertools import pairwise

import pytest

from huren.crypto import b64url
from huren.crypto.aead import FieldCipher
from huren.crypto.opaque import REF_LEN, RefCodec
from huren.errors import NotFound
from huren.services.refs import MISSING, MISSING_REJECTED, Refs

SECRET = bytes(range(32))


@pytest.fixture(params=[True, False], ids=["sm4", "aes"])
def codec(request: pytest.FixtureRequest) -> RefCodec:
    return RefCodec(SECRET, sm4=request.param)


def test_round_trip_and_shape(codec: RefCodec) -> None:
    for n in (0, 1, 2, 255, 2**32, 2**63 - 1, 2**64 - 1):
        ref = codec.encode("lab", n)
        assert len(ref) == REF_LEN and ref.isascii() and "=" not in ref
        assert codec.decode("lab", ref) == n
    assert codec.encode("lab", 7) == codec.encode("lab", 7)  # stable: links in records stay valid


def test_neighbours_share_nothing(codec: RefCodec) -> None:
    refs = [codec.encode("lab", n) for n in range(1, 301)]
    assert len(set(refs)) == 300
    assert all(not r.isdigit() for r in refs)
    # consecutive ids give unrelated refs: no common prefix worth walking
    assert max(len(_common_prefix(a, b)) for a, b in pairwise(refs)) <= 3


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def test_every_one_character_change_is_refused(codec: RefCodec) -> None:
    ref = codec.encode("exam", 42)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i in range(REF_LEN):
        for ch in alphabet:
            if ch != ref[i]:
                assert codec.decode("exam", ref[:i] + ch + ref[i + 1 :]) is None, (i, ch)


def test_other_kind_other_key_and_junk_are_refused(codec: RefCodec) -> None:
    ref = codec.encode("lab", 42)
    assert codec.decode("exam", ref) is None
    assert RefCodec(bytes(32), sm4=True).decode("lab", ref) is None
    assert RefCodec(bytes(32), sm4=False).decode("lab", ref) is None
    for junk in ("42", "1", "", ref[:-1], ref + "A", ref + "==", "." * 22, "../../" + ref[6:], 42, None, ["x"]):
        assert codec.decode("lab", junk) is None, junk


def test_non_canonical_spelling_of_a_good_block_is_refused(codec: RefCodec) -> None:
    """The last character carries 4 spare bits: another spelling of the same 16 bytes is no ref."""
    ref = codec.encode("lab", 9)
    block = b64url.decode(ref)
    twins = [ref[:-1] + c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" if c != ref[-1]]
    same = [t for t in twins if b64url.decode(t) == block]
    assert same  # such spellings exist …
    assert all(codec.decode("lab", t) is None for t in same)  # … and are refused


def test_refs_door_answers_invalid_as_missing() -> None:
    refs = Refs(RefCodec(SECRET))
    ref = refs.report("lab", 5)
    assert refs.report_id("lab", ref) == 5
    for bad in ("5", ref[:-2] + "AA", refs.report("exam", 5), refs.report("lab", 0), refs.report("lab", 2**63)):
        with pytest.raises(NotFound) as exc:
            refs.report_id("lab", bad)
        assert exc.value.message == MISSING and not exc.value.problems


def test_rejected_refs_are_a_kind_of_their_own() -> None:
    """Rejected-submission refs (tag ``rejected``): a round trip, and neither a report's nor an
    accept record's ref of the same number is one — nor is a rejected ref a report's."""
    refs = Refs(RefCodec(SECRET))
    ref = refs.rejected(7)
    changed = ("B" if ref[0] == "A" else "A") + ref[1:]
    assert len(ref) == REF_LEN and refs.rejected_id(ref) == 7
    assert ref not in (refs.report("lab", 7), refs.report("exam", 7), refs.record("accept", 7))
    for bad in ("7", refs.report("lab", 7), refs.record("accept", 7), refs.rejected(0), refs.rejected(2**63), changed):
        with pytest.raises(NotFound) as exc:
            refs.rejected_id(bad)
        assert exc.value.message == MISSING_REJECTED and not exc.value.problems
    with pytest.raises(NotFound):
        refs.report_id("lab", ref)


def test_derived_secret_is_stable_per_purpose_and_independent_of_data_keys() -> None:
    index = bytes(range(100, 132))
    a = FieldCipher({1: b"a" * 32}, 1, index)
    b = FieldCipher({1: b"a" * 32, 2: b"b" * 32}, 2, index)  # after a data-key rotation
    assert a.derive_secret("report-refs") == b.derive_secret("report-refs")
    assert len(a.derive_secret("report-refs")) == 32
    assert a.derive_secret("report-refs") != a.derive_secret("record-refs")
    assert a.derive_secret("report-refs") != FieldCipher({1: b"a" * 32}, 1, bytes(32)).derive_secret("report-refs")
    assert a.derive_secret("report-refs") != index


def test_refs_from_many_threads_are_the_same_refs() -> None:
    """The codec keeps one cipher context per thread: refs made concurrently equal refs made alone."""
    from concurrent.futures import ThreadPoolExecutor

    from huren.crypto.opaque import RefCodec

    codec = RefCodec(b"s" * 32)
    alone = [codec.encode("lab", n) for n in range(2000)]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda n: codec.encode("lab", n), range(2000)))
        back = list(pool.map(lambda r: codec.decode("lab", r), together))
    assert together == alone and back == list(range(2000))
