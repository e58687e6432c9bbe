"""Charts of a benchmark run, as SVG next to the report (matplotlib, the ``bench`` extra).

The benchmarks leave what the charts need in ``shared`` (``chart:<name>`` keys); each
chart is drawn only when its data was measured in this run. matplotlib is optional and
imported here only: without it the report says that the charts were skipped.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

__all__ = ["NO_MATPLOTLIB", "available", "write_charts"]

NO_MATPLOTLIB: Final = "Charts skipped: matplotlib is not installed (`pip install -e '.[bench]'`)."
#: Colours: aioetl in one, the references in another (readable in black and white too).
_AIOETL: Final = "#1f6fb2"
_REFERENCE: Final = "#9a9a9a"
_DIAGNOSTIC: Final = "#c7d7e8"


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    matplotlib.rcParams["svg.hashsalt"] = "aioetl"  # stable ids: reruns diff cleanly
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, figure: Any, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, format="svg", metadata={"Date": None})
    plt.close(figure)


def _bars(
    axis: Any, labels: Sequence[str], values: Sequence[float], colours: Sequence[str]
) -> None:
    positions = list(range(len(labels)))
    axis.barh(positions, values, color=colours)
    axis.set_yticks(positions, labels)
    axis.invert_yaxis()
    top = max(values) if values else 1.0
    for position, value in zip(positions, values, strict=True):
        axis.text(value + top * 0.01, position, f"{value:,.0f}", va="center", fontsize=8)
    axis.set_xlim(0, top * 1.22)


def _colour(label: str) -> str:
    if "diagnostic" in label:
        return _DIAGNOSTIC
    return _AIOETL if label.startswith("aioetl") else _REFERENCE


def _throughput(plt: Any, data: dict[str, Any], replica: dict[str, Any] | None, path: Path) -> None:
    legs: list[tuple[str, dict[str, float]]] = []
    for leg, rates in data["legs"].items():
        shown = dict(rates)
        if replica is not None and leg.startswith("source"):
            # The replica benchmark's own side-by-side rounds, when they ran.
            shown.update({f"{name} (rebuild rounds)": v for name, v in replica["rates"].items()})
        legs.append((leg, shown))
    figure, axes = plt.subplots(len(legs), 1, figsize=(9, 2.2 + 1.6 * len(legs) * 2))
    for axis, (leg, rates) in zip(axes if len(legs) > 1 else [axes], legs, strict=True):
        ordered = sorted(rates.items(), key=lambda item: -item[1])
        labels = [name for name, _ in ordered]
        _bars(axis, labels, [v for _, v in ordered], [_colour(n) for n in labels])
        axis.set_title(f"{leg}, {data['rows']:,} rows: rows/s, higher is better", fontsize=10)
        axis.set_xlabel("rows/s")
    _save(plt, figure, path)


def _replica_only(plt: Any, replica: dict[str, Any], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(9, 2.6))
    ordered = sorted(replica["rates"].items(), key=lambda item: -item[1])
    labels = [name for name, _ in ordered]
    _bars(axis, labels, [v for _, v in ordered], [_colour(n) for n in labels])
    axis.set_title(f"source → replica full rebuild, {replica['rows']:,} rows: rows/s", fontsize=10)
    axis.set_xlabel("rows/s")
    _save(plt, figure, path)


def _stages(plt: Any, data: dict[str, dict[str, float]], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(9, 3.2))
    drivers = list(data)
    stages = list(next(iter(data.values())))
    height = 0.8 / max(1, len(drivers))
    for index, driver in enumerate(drivers):
        positions = [s + index * height for s in range(len(stages))]
        values = [data[driver][stage] for stage in stages]
        axis.barh(positions, values, height=height, label=driver)
        for position, value in zip(positions, values, strict=True):
            axis.text(value, position, f" {value:.2f}", va="center", fontsize=8)
    axis.set_yticks([s + height * (len(drivers) - 1) / 2 for s in range(len(stages))], stages)
    axis.invert_yaxis()
    axis.set_xlabel("seconds (stages overlap: they add up to more than the wall time)")
    axis.set_title("replica → warehouse: time per stage (median run)", fontsize=10)
    axis.legend(fontsize=8)
    _save(plt, figure, path)


def _memory(plt: Any, data: dict[str, Any], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 3.6))
    points = sorted(data["points"])
    axis.plot([rows for rows, _ in points], [mb for _, mb in points], marker="o", color=_AIOETL)
    for rows, mb in points:
        axis.annotate(f"{mb:.0f} MB", (rows, mb), textcoords="offset points", xytext=(4, 6))
    axis.axhline(data["limit"], color="#b22222", linestyle="--", linewidth=1)
    axis.text(0, data["limit"], f" limit {data['limit']:.0f} MB", va="bottom", fontsize=8)
    axis.set_ylim(0, data["limit"] * 1.15)
    axis.set_xlabel("rows copied (`aioetl replicate --target all --full`)")
    axis.set_ylabel("peak RSS, MB")
    axis.set_title("Peak RSS against rows", fontsize=10)
    axis.ticklabel_format(axis="x", style="plain")
    _save(plt, figure, path)


def write_charts(shared: dict[str, Any], report: Path) -> list[tuple[str, Path]]:
    """Draw every chart this run has data for next to ``report``; (title, file) of each."""
    plt = _pyplot()
    stem = report.with_suffix("")
    written: list[tuple[str, Path]] = []
    replica = shared.get("chart:replica")
    if "chart:throughput" in shared:
        path = Path(f"{stem}-rows-per-second.svg")
        _throughput(plt, shared["chart:throughput"], replica, path)
        written.append(("Rows/s of aioetl against each reference, per leg", path))
    elif replica is not None:
        path = Path(f"{stem}-replica-rebuild.svg")
        _replica_only(plt, replica, path)
        written.append(("Rows/s of the replica full rebuild against mysqldump | mariadb", path))
    if "chart:stages" in shared:
        path = Path(f"{stem}-warehouse-stages.svg")
        _stages(plt, shared["chart:stages"], path)
        written.append(("Time per stage of the warehouse leg", path))
    if "chart:memory" in shared:
        path = Path(f"{stem}-memory.svg")
        _memory(plt, shared["chart:memory"], path)
        written.append(("Peak RSS against rows", path))
    return written
