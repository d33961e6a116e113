"""Which bindings a routing key matches, for the three channel types.

- ``fanout``: every binding, whatever the keys.
- ``direct``: the bindings whose key equals the routing key.
- ``topic``: keys are words separated by ``.``; in a binding pattern a word ``*`` matches
  exactly one word and ``#`` zero or more (``audit.#`` matches ``audit``, ``a.#.c``
  matches ``a.b.c`` and ``a.c``, ``#`` alone everything, the empty key included). The empty
  key has no words; ``*`` and ``#`` are wildcards only as whole words.

A router holds (pattern, target) pairs and answers ``match(key)`` with each matching target
once, however many of its patterns match. The topic router keeps its patterns in a trie of
words, so a match costs the words of the key times the wildcards met on the way, not the
number of bindings, and it remembers its answers for recent keys until its bindings change.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from buzon.store.records import ChannelType

T = TypeVar("T", bound=Hashable)

# Most distinct keys a topic router remembers the answer for, until a binding changes.
_CACHED_KEYS = 4096


def words(key: str) -> list[str]:
    """The words of a topic key or pattern (none for the empty key)."""
    return key.split(".") if key else []


class Router(Generic[T]):
    """A fanout router: every target matches every key.

    Targets are answered in the order they were first added.
    """

    __slots__ = ("_all", "_counts")

    def __init__(self) -> None:
        # target -> how many patterns it was added with
        self._counts: dict[T, int] = {}
        self._all: tuple[T, ...] = ()

    def add(self, pattern: str, target: T) -> None:
        """Route keys ``pattern`` matches to ``target`` (the caller adds each pair once)."""
        count = self._counts.get(target, 0)
        self._counts[target] = count + 1
        if not count:
            self._all = tuple(self._counts)

    def remove(self, pattern: str, target: T) -> None:
        """Undo one :meth:`add` of the same pair (a missing pair is ignored)."""
        count = self._counts.get(target, 0)
        if count > 1:
            self._counts[target] = count - 1
        elif count:
            del self._counts[target]
            self._all = tuple(self._counts)

    def match(self, key: str) -> tuple[T, ...]:
        """Every target ``key`` reaches, each once."""
        return self._all

    def __len__(self) -> int:
        return len(self._counts)


class DirectRouter(Router[T]):
    """Targets whose pattern equals the key."""

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        super().__init__()
        self._by_key: dict[str, tuple[T, ...]] = {}

    def add(self, pattern: str, target: T) -> None:
        found = self._by_key.get(pattern, ())
        if target not in found:
            self._by_key[pattern] = (*found, target)
            super().add(pattern, target)

    def remove(self, pattern: str, target: T) -> None:
        found = self._by_key.get(pattern, ())
        if target not in found:
            return
        rest = tuple(t for t in found if t is not target)
        if rest:
            self._by_key[pattern] = rest
        else:
            del self._by_key[pattern]
        super().remove(pattern, target)

    def match(self, key: str) -> tuple[T, ...]:
        return self._by_key.get(key, ())


class _Node(Generic[T]):
    """One word position of the topic trie."""

    __slots__ = ("children", "targets")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.targets: dict[T, None] = {}  # patterns that end here, as an ordered set


class TopicRouter(Router[T]):
    """Targets whose pattern matches the key word by word, with ``*`` and ``#``."""

    __slots__ = ("_cache", "_root")

    def __init__(self) -> None:
        super().__init__()
        self._root: _Node[T] = _Node()
        self._cache: dict[str, tuple[T, ...]] = {}

    def add(self, pattern: str, target: T) -> None:
        node = self._root
        for word in words(pattern):
            node = node.children.setdefault(word, _Node())
        if target not in node.targets:
            node.targets[target] = None
            self._cache.clear()
            super().add(pattern, target)

    def remove(self, pattern: str, target: T) -> None:
        path = [self._root]
        for word in words(pattern):
            child = path[-1].children.get(word)
            if child is None:
                return
            path.append(child)
        if target not in path[-1].targets:
            return
        del path[-1].targets[target]
        self._cache.clear()
        super().remove(pattern, target)
        # prune the branch it leaves empty
        pattern_words = words(pattern)
        for depth in range(len(pattern_words), 0, -1):
            node = path[depth]
            if node.targets or node.children:
                break
            del path[depth - 1].children[pattern_words[depth - 1]]

    def match(self, key: str) -> tuple[T, ...]:
        cache = self._cache
        found = cache.get(key)
        if found is None:
            out: dict[T, None] = {}
            _walk(self._root, words(key), 0, out)
            found = tuple(out)
            if len(cache) >= _CACHED_KEYS:
                cache.clear()
            cache[key] = found
        return found


def _walk(node: _Node[T], key: list[str], at: int, out: dict[T, None]) -> None:
    """Add to ``out`` the targets of the patterns below ``node`` that match ``key[at:]``."""
    children = node.children
    hash_node = children.get("#")
    if hash_node is not None:
        for rest in range(at, len(key) + 1):  # '#' takes zero or more words
            _walk(hash_node, key, rest, out)
    if at == len(key):
        out.update(node.targets)
        return
    child = children.get(key[at])
    if child is not None and key[at] != "#":
        _walk(child, key, at + 1, out)
    star = children.get("*")
    if star is not None and key[at] != "*":
        _walk(star, key, at + 1, out)


def router(channel_type: ChannelType) -> Router[T]:
    """A new, empty router for a channel of that type."""
    if channel_type is ChannelType.TOPIC:
        return TopicRouter()
    if channel_type is ChannelType.DIRECT:
        return DirectRouter()
    return Router()
