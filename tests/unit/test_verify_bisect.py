"""verify's planning without a database: range halving, chunk spans, and the walk over
two in-memory tables (a Side is a small protocol; these stand-ins hold rows in a dict)."""

from __future__ import annotations

import hashlib

import pytest

from aioetl.verify.compare import compare_ranges, compare_whole, next_span, split_range
from aioetl.verify.sides import Checksum, Key


def _md5(key: int, value: str) -> str:
    # As on the servers, the key columns are part of the row's canonical string.
    return hashlib.md5(f"{key}~{value}".encode()).hexdigest()


class MemorySide:
    def __init__(self, rows: dict[int, str]) -> None:
        self.label = "memory"
        self.rows = rows
        self.statements = 0

    def _in(self, low: int | None, high: int | None) -> dict[int, str]:
        return {
            k: v
            for k, v in self.rows.items()
            if (low is None or k > low) and (high is None or k <= high)
        }

    async def bounds(self) -> tuple[int, int] | None:
        self.statements += 1
        return (min(self.rows), max(self.rows)) if self.rows else None

    async def checksum(self, low: int | None, high: int | None) -> Checksum:
        self.statements += 1
        rows = self._in(low, high)
        total = sum(int(_md5(k, v)[:15], 16) for k, v in rows.items())
        return Checksum(len(rows), total)

    async def hashes(self, low: int | None, high: int | None) -> dict[Key, str]:
        self.statements += 1
        return {(k,): _md5(k, v) for k, v in self._in(low, high).items()}


def test_split_range_halves_without_overlap() -> None:
    assert split_range(0, 10) == ((0, 5), (5, 10))
    assert split_range(-1, 1) == ((-1, 0), (0, 1))
    assert split_range(4, 7) == ((4, 5), (5, 7))
    with pytest.raises(ValueError, match="cannot be split"):
        split_range(3, 4)


@pytest.mark.parametrize(
    ("span", "rows", "chunk", "expected"),
    [
        (1000, 1000, 1000, 1000),  # on target
        (1000, 0, 1000, 4000),  # a gap: grow, boundedly
        (1000, 10, 1000, 4000),  # sparse: grow at most fourfold
        (1000, 5000, 1000, 200),  # dense: shrink at once
        (1, 50, 10, 1),  # never below one key value
    ],
)
def test_next_span(span: int, rows: int, chunk: int, expected: int) -> None:
    assert next_span(span, rows, chunk) == expected


async def test_walk_finds_missing_extra_and_different_keys() -> None:
    source = {k: f"row {k}" for k in range(1, 10_001)}
    target = dict(source)
    del target[17]
    target[5000] = "edited"
    target[20_000] = "extra beyond the source's range"
    target[0] = "extra below it"
    left, right = MemorySide(source), MemorySide(target)
    found = await compare_ranges(left, right, chunk_rows=1000, leaf_rows=10)
    assert found.missing == [(17,)]
    assert found.extra == [(0,), (20_000,)]
    assert found.different == [(5000,)]
    assert not found.equal
    # Bounded work: ~11 chunks plus about 2 x log2(1000/10) checksums per differing chunk.
    assert left.statements < 60


async def test_equal_tables_cost_one_checksum_per_chunk() -> None:
    rows = {k: str(k) for k in range(1, 5001)}
    left, right = MemorySide(rows), MemorySide(dict(rows))
    found = await compare_ranges(left, right, chunk_rows=1000, leaf_rows=10)
    assert found.equal and found.rows == 5000
    assert found.checksums == left.statements - 1 <= 6


async def test_a_swapped_pair_is_seen() -> None:
    # Two rows' values exchanged: the same multiset of values, found because each row's
    # hash covers its key too.
    source = {1: "a", 2: "b", 3: "c", 4: "d"}
    target = {1: "b", 2: "a", 3: "c", 4: "d"}
    found = await compare_ranges(MemorySide(source), MemorySide(target), chunk_rows=2, leaf_rows=1)
    assert found.different == [(1,), (2,)]


async def test_empty_tables_are_equal_and_whole_tables_compare_once() -> None:
    found = await compare_ranges(MemorySide({}), MemorySide({}))
    assert found.equal and found.rows == 0
    whole = await compare_whole(MemorySide({1: "a"}), MemorySide({1: "b"}), keyed=False)
    assert whole.whole and not whole.equal
    keyed = await compare_whole(MemorySide({1: "a"}), MemorySide({1: "b"}), keyed=True)
    assert not keyed.whole and keyed.different == [(1,)]
