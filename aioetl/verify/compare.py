"""Comparing one table on two servers: chunk checksums, then bisection down to the rows.

The walk follows pt-table-checksum: the key's first column is cut into ranges of about
``chunk_rows`` rows (from MIN/MAX, growing or shrinking with the rows each range held,
so no statement reads every key of the source). Both servers checksum each range at the
same time. A range whose checksums differ is halved, and each half checksummed again,
until it holds at most ``leaf_rows`` rows; then both servers list that range's
(key, row hash) pairs and the keys are sorted into missing, extra and different.
Only keys, counts and hashes leave the servers, never a value.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

from aioetl.verify.sides import Checksum, Key, Side

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "DEFAULT_LEAF_ROWS",
    "Differences",
    "compare_ranges",
    "compare_whole",
    "next_span",
    "split_range",
]

#: Rows per checksummed range (pt-table-checksum's default chunk is 1,000 rows aimed at
#: 0.5 s; a checksum statement here reads an index range and hashes it on the server).
DEFAULT_CHUNK_ROWS: Final = 10_000
#: A differing range is bisected until it holds at most this many rows.
DEFAULT_LEAF_ROWS: Final = 100
#: A range grows at most this much from one chunk to the next (sparse keys).
_MAX_GROWTH: Final = 4


@dataclass(slots=True)
class Differences:
    """What differs between a table's source side and its target side (keys only)."""

    rows: int = 0  # rows compared (the larger side's count of each range)
    missing: list[Key] = field(default_factory=list)  # in the source, not in the target
    extra: list[Key] = field(default_factory=list)  # in the target, not in the source
    different: list[Key] = field(default_factory=list)  # in both, with other values
    #: Ranges checksummed (chunks and bisection halves), per side.
    checksums: int = 0
    #: True when the table could only be compared whole (no usable key): the counts above
    #: stay empty and ``whole_differs`` says whether anything differs.
    whole: bool = False
    whole_differs: bool = False

    @property
    def equal(self) -> bool:
        if self.whole:
            return not self.whole_differs
        return not (self.missing or self.extra or self.different)


def split_range(low: int, high: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The two halves of the key range ``(low, high]`` (``high - low >= 2``)."""
    if high - low < 2:
        raise ValueError(f"range ({low}, {high}] holds one key value and cannot be split")
    middle = low + (high - low) // 2
    return (low, middle), (middle, high)


def next_span(span: int, rows: int, chunk_rows: int) -> int:
    """The key span of the next chunk, aimed at ``chunk_rows`` rows after one of ``span``
    key values held ``rows`` rows; it grows at most fourfold (a gap in the keys is not a
    density), and shrinks at once (a dense stretch must not make a huge chunk)."""
    if rows <= 0:
        return span * _MAX_GROWTH
    return max(1, min(span * _MAX_GROWTH, span * chunk_rows // rows))


async def _both(
    left: Side, right: Side, low: int | None, high: int | None
) -> tuple[Checksum, Checksum]:
    first, second = await asyncio.gather(left.checksum(low, high), right.checksum(low, high))
    return first, second


async def _leaf(
    left: Side, right: Side, low: int | None, high: int | None, found: Differences
) -> None:
    ours, theirs = await asyncio.gather(left.hashes(low, high), right.hashes(low, high))
    found.missing.extend(sorted(set(ours) - set(theirs)))
    found.extra.extend(sorted(set(theirs) - set(ours)))
    found.different.extend(sorted(k for k in set(ours) & set(theirs) if ours[k] != theirs[k]))


async def _bisect(
    left: Side,
    right: Side,
    low: int,
    high: int,
    sums: tuple[Checksum, Checksum],
    found: Differences,
    leaf_rows: int,
) -> None:
    if max(sums[0].rows, sums[1].rows) <= leaf_rows or high - low < 2:
        await _leaf(left, right, low, high, found)
        return
    for half_low, half_high in split_range(low, high):
        halves = await _both(left, right, half_low, half_high)
        found.checksums += 1
        if halves[0] != halves[1]:
            await _bisect(left, right, half_low, half_high, halves, found, leaf_rows)


async def compare_ranges(
    left: Side,
    right: Side,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    leaf_rows: int = DEFAULT_LEAF_ROWS,
) -> Differences:
    """Compare ``left`` (the side copied from) with ``right`` (the copy), range by range."""
    found = Differences()
    edges = [e for e in await asyncio.gather(left.bounds(), right.bounds()) if e is not None]
    if not edges:
        return found
    low = min(e[0] for e in edges) - 1
    high = max(e[1] for e in edges)
    span = chunk_rows
    while low < high:
        top = min(low + span, high)
        sums = await _both(left, right, low, top)
        found.checksums += 1
        found.rows += max(sums[0].rows, sums[1].rows)
        if sums[0] != sums[1]:
            await _bisect(left, right, low, top, sums, found, leaf_rows)
        span = next_span(top - low, max(sums[0].rows, sums[1].rows), chunk_rows)
        low = top
    for keys in (found.missing, found.extra, found.different):
        keys.sort()
    return found


async def compare_whole(
    left: Side, right: Side, *, keyed: bool, leaf_rows: int = DEFAULT_LEAF_ROWS
) -> Differences:
    """Compare a table that has no integer key to range over: one checksum of each side;
    with a key and few enough rows, the rows themselves."""
    found = Differences(whole=True)
    sums = await _both(left, right, None, None)
    found.checksums = 1
    found.rows = max(sums[0].rows, sums[1].rows)
    found.whole_differs = sums[0] != sums[1]
    if found.whole_differs and keyed and found.rows <= leaf_rows * 100:
        found.whole = False
        await _leaf(left, right, None, None, found)
    return found
