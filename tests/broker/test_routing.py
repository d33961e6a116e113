"""The routers: topic matching against a plain recursive reference, direct and fanout."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buzon.broker.routing import DirectRouter, Router, TopicRouter, router, words
from buzon.store import ChannelType


def reference(pattern: list[str], key: list[str]) -> bool:
    """Topic matching as the rule says it, word by word, with no cleverness."""
    if not pattern:
        return not key
    if pattern[0] == "#":
        return reference(pattern[1:], key) or (bool(key) and reference(pattern, key[1:]))
    if not key:
        return False
    return pattern[0] in ("*", key[0]) and reference(pattern[1:], key[1:])


# few distinct words, so that patterns and keys meet often; "" is a word too ("a..b")
WORD = st.sampled_from(["a", "b", "c", "", "*", "#"])
KEY_WORD = st.sampled_from(["a", "b", "c", "", "*", "#"])


def joined(parts: list[str]) -> str:
    return ".".join(parts)


@settings(max_examples=400, deadline=None)
@given(
    patterns=st.lists(st.lists(WORD, max_size=5).map(joined), max_size=12),
    keys=st.lists(st.lists(KEY_WORD, max_size=6).map(joined), min_size=1, max_size=8),
    removed=st.sets(st.integers(0, 11)),
)
def test_topic_router_matches_what_the_reference_says(
    patterns: list[str], keys: list[str], removed: set[int]
) -> None:
    topic: TopicRouter[int] = TopicRouter()
    bound = dict(enumerate(patterns))
    for target, pattern in bound.items():
        topic.add(pattern, target)
    for key in keys:  # answered, then cached
        expected = {t for t, p in bound.items() if reference(words(p), words(key))}
        assert set(topic.match(key)) == expected
        assert sorted(topic.match(key)) == sorted(expected)  # each target once
    for target in removed & set(bound):
        topic.remove(bound.pop(target), target)
    for key in keys:
        expected = {t for t, p in bound.items() if reference(words(p), words(key))}
        assert set(topic.match(key)) == expected
    assert len(topic) == len(bound)


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("audit.#", "audit", True),
        ("audit.#", "audit.x.y", True),
        ("audit.#", "auditx", False),
        ("a.#.c", "a.b.c", True),
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.b.b.c", True),
        ("a.#.c", "a.b", False),
        ("#", "", True),
        ("#", "anything.at.all", True),
        ("*", "", False),
        ("*", "one", True),
        ("*", "one.two", False),
        ("*.b", "a.b", True),
        ("a.*", "a", False),
        ("", "", True),
        ("", "a", False),
        ("a*", "ab", False),  # wildcards only as whole words
        ("a*", "a*", True),
    ],
)
def test_topic_examples(pattern: str, key: str, matches: bool) -> None:
    topic: TopicRouter[str] = TopicRouter()
    topic.add(pattern, "t")
    assert topic.match(key) == (("t",) if matches else ())


def test_a_target_bound_with_two_matching_patterns_is_answered_once() -> None:
    topic: TopicRouter[str] = TopicRouter()
    topic.add("a.*", "q")
    topic.add("#", "q")
    topic.add("a.b", "other")
    assert sorted(topic.match("a.b")) == ["other", "q"]
    topic.remove("#", "q")
    assert sorted(topic.match("a.b")) == ["other", "q"]
    topic.remove("a.*", "q")
    assert topic.match("a.b") == ("other",)
    assert topic.match("x") == ()


def test_direct_router_needs_the_exact_key() -> None:
    direct: DirectRouter[str] = DirectRouter()
    direct.add("red", "q1")
    direct.add("red", "q2")
    direct.add("*", "q3")
    assert direct.match("red") == ("q1", "q2")
    assert direct.match("blue") == ()
    assert direct.match("*") == ("q3",)  # no wildcards in a direct channel
    direct.remove("red", "q1")
    assert direct.match("red") == ("q2",)
    assert len(direct) == 2


def test_fanout_router_ignores_keys_and_counts_each_target_once() -> None:
    fanout: Router[str] = Router()
    fanout.add("x", "q")
    fanout.add("y", "q")
    fanout.add("", "s")
    assert fanout.match("anything") == ("q", "s")
    fanout.remove("x", "q")
    assert fanout.match("") == ("q", "s")
    fanout.remove("y", "q")
    assert fanout.match("") == ("s",)


def test_router_of_each_type() -> None:
    assert type(router(ChannelType.TOPIC)) is TopicRouter
    assert type(router(ChannelType.DIRECT)) is DirectRouter
    assert type(router(ChannelType.FANOUT)) is Router
