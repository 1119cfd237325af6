"""The fast canonical encoder (orjson) writes exactly what the reference encoder writes.

The reference is ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
allow_nan=False)``; every hash in the log is over its bytes, so the fast path must agree
byte for byte or hand the object to the reference.
"""

from __future__ import annotations

import json
import math
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wastetrail_contracts.codec import (
    _reference_bytes,
    canonical_bytes,
    canonical_bytes_finite,
    envelope_hash,
    envelope_hash_finite,
    load_canonical,
    load_json_object,
)

SURROGATES = range(0xD800, 0xE000)


def test_every_code_point_is_written_as_the_reference_writes_it() -> None:
    chars = [chr(cp) for cp in range(0x110000) if cp not in SURROGATES]
    for start in range(0, len(chars), 4096):
        chunk = chars[start:start + 4096]
        obj = {c: c + "x" + c for c in chunk}  # as keys (sorted) and as values
        assert canonical_bytes(obj) == _reference_bytes(obj), f"from U+{ord(chunk[0]):04X}"


def _random_floats(n: int) -> list[float]:
    rng = random.Random(20261123)
    out = [1e16, 1e15, 1e-4, 1e-5, 9.99e-5, -0.0, 0.0, 5e-324, 1.7976931348623157e308,
           1e22, 1e21, 0.1, 10.045, 105.7123456, 2.5e-7, 90.0, -180.0, 123456789012345678.0]
    for _ in range(n):
        out.append(struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0])
        out.append(rng.uniform(-180, 180))
        out.append(round(rng.uniform(-1e-3, 1e-3), rng.randint(0, 12)))
        out.append(rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30))
    return [f for f in out if math.isfinite(f)]


def test_floats_are_written_as_the_reference_writes_them() -> None:
    floats = _random_floats(250_000)
    for start in range(0, len(floats), 1000):
        obj = {"f": floats[start:start + 1000], "lat": floats[start]}
        assert canonical_bytes(obj) == _reference_bytes(obj)
        assert canonical_bytes_finite(obj) == _reference_bytes(obj)


def test_tiny_floats_take_the_reference_path() -> None:
    # Python writes these with an exponent, orjson does not: the reference must win.
    assert canonical_bytes({"lat": 1e-05}) == b'{"lat":1e-05}'
    assert canonical_bytes({"lat": [-3.9164298622776456e-05]}) == (
        b'{"lat":[-3.9164298622776456e-05]}')
    assert canonical_bytes({"lat": 2.5e-07}) == b'{"lat":2.5e-07}'


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_floats_are_refused_even_nested_beside_null(bad: float) -> None:
    with pytest.raises(ValueError):
        canonical_bytes({"a": None, "b": {"c": [1, bad]}})
    with pytest.raises(ValueError):
        envelope_hash({"a": None, "b": bad})


def test_what_orjson_cannot_write_is_left_to_the_reference() -> None:
    big = {"n": 2**70, "m": -(2**65)}
    assert canonical_bytes(big) == b'{"m":-36893488147419103232,"n":1180591620717411303424}'
    with pytest.raises(ValueError):  # a lone surrogate has no UTF-8 form
        canonical_bytes({"s": "\ud800"})
    with pytest.raises(TypeError):  # not JSON, as before
        canonical_bytes({"t": object()})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=5),
                      inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=6).filter(lambda k: k < "\ud800" or k > "\udfff"),
                       json_values, max_size=6))
def test_any_json_object_encodes_and_hashes_as_the_reference(obj: dict[str, object]) -> None:
    try:
        reference = _reference_bytes(obj)
    except ValueError:
        with pytest.raises(ValueError):
            canonical_bytes(obj)
        return
    assert canonical_bytes(obj) == reference
    assert envelope_hash(obj) == envelope_hash_finite(obj)
    # And the reader's fast path hashes canonical bytes exactly as the strict path does.
    raw, digest = load_canonical(reference)
    assert raw == load_json_object(reference)
    if digest is not None:
        assert digest == envelope_hash(raw)


def test_bytes_written_by_orjson_for_a_tiny_float_are_not_canonical() -> None:
    # A producer using orjson naively would write 1e-5 as 0.00001: that is not the
    # canonical encoding, so the reader must not take its fast path for it.
    data = b'{"a":0.00001,"hash":"' + b"0" * 64 + b'"}'
    raw, digest = load_canonical(data)
    assert digest is None and raw == json.loads(data)
