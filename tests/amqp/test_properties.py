"""Hypothesis: field tables and the 13 properties round-trip, against pamqp too."""

from __future__ import annotations

import datetime
import decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import decode

from buzon.amqp import Properties, decode_properties, encode_properties
from buzon.amqp.tables import FieldValue, decode_table, encode_table

PROFILE = settings(max_examples=150, deadline=None)
NAME = st.text(max_size=12).filter(lambda s: len(s.encode()) <= 255)
SCALAR = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.none(),
    st.builds(
        lambda n, s: decimal.Decimal(n).scaleb(-s),
        st.integers(-(2**31), 2**31 - 1),
        st.integers(0, 20),
    ),
    st.integers(0, 2**34).map(lambda s: datetime.datetime.fromtimestamp(s, datetime.UTC)),
)
VALUE: st.SearchStrategy[FieldValue] = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(NAME, inner, max_size=4)),
    max_leaves=12,
)
TABLE = st.dictionaries(NAME, VALUE, max_size=6)
SHORT = st.text(max_size=30).filter(lambda s: len(s.encode()) <= 255)


@PROFILE
@given(TABLE)
def test_tables_round_trip(table: dict[str, FieldValue]) -> None:
    raw = encode_table(table)
    assert decode_table(memoryview(raw), 0, len(raw)) == (table, len(raw))


@PROFILE
@given(
    st.dictionaries(
        NAME,
        st.one_of(st.integers(-(2**31), 2**31 - 1), st.booleans(), st.text(max_size=10), st.none()),
        max_size=6,
    )
)
def test_pamqp_reads_our_tables(table: dict[str, FieldValue]) -> None:
    raw = encode_table(table)
    assert decode.field_table(raw) == (len(raw), table)


@st.composite
def properties(draw: st.DrawFn) -> Properties:
    def short() -> str | None:
        return draw(st.none() | SHORT)

    def octet() -> int | None:
        return draw(st.none() | st.integers(0, 255))

    return Properties(
        content_type=short(),
        content_encoding=short(),
        headers=draw(st.none() | TABLE),
        delivery_mode=octet(),
        priority=octet(),
        correlation_id=short(),
        reply_to=short(),
        expiration=short(),
        message_id=short(),
        timestamp=draw(st.none() | st.integers(0, 2**64 - 1)),
        type=short(),
        user_id=short(),
        app_id=short(),
    )


@PROFILE
@given(properties())
def test_properties_round_trip(props: Properties) -> None:
    assert decode_properties(encode_properties(props)) == props


def test_all_thirteen_properties() -> None:
    props = Properties(
        "application/json",
        "gzip",
        {"int32": 2**31 - 1, "int64": 2**40, "flag": True, "nested": {"a": [1, None, b"\x00"]}},
        2,
        9,
        "corr",
        "reply.q",
        "60000",
        "msg-1",
        1_700_000_000,
        "kind",
        "alice",
        "app",
    )
    assert decode_properties(encode_properties(props)) == props
