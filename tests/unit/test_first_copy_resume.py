"""A stamped table's first copy stopped in its bulk pass: planned, shown and kept as such."""

from __future__ import annotations

from aioetl.replication.plan import Action, _Options, _replica_leg, _warehouse_leg
from aioetl.replication.state import TableState, Watermark
from aioetl.status import _lag, _mark

_STOPPED = TableState(
    strategy="incremental",
    mark=Watermark(key=2**63 - 1, stamp="2024-03-01 09:00:00", bulk=40),
    evidence=None,
)
_DONE = TableState(
    strategy="incremental",
    mark=Watermark(key=2**63 - 1, stamp="2024-03-01 09:00:00"),
    evidence=None,
)
_OPTIONS = _Options(replica=True, warehouse=True, full=False, reconcile=False, schema="raw")


def test_a_stopped_first_copy_resumes_whatever_the_probe_says() -> None:
    # No row after the watermark's stamp would make a finished copy "unchanged".
    plan = _replica_leg("t", False, _OPTIONS, _STOPPED, True, False, None)
    assert plan.action is Action.FIRST and plan.resume == _STOPPED.mark
    assert "after key 40" in plan.reason
    assert _replica_leg("t", False, _OPTIONS, _DONE, True, False, None).action is Action.UNCHANGED


def test_the_warehouse_resumes_even_when_the_replica_is_idle() -> None:
    idle = _replica_leg("t", False, _OPTIONS, _DONE, True, False, None)
    plan = _warehouse_leg(False, _OPTIONS, idle, _DONE, _STOPPED, True, None)
    assert plan.action is Action.FIRST and plan.resume == _STOPPED.mark
    assert _warehouse_leg(False, _OPTIONS, idle, _DONE, _DONE, True, None).action is (
        Action.UNCHANGED
    )


def test_status_shows_a_first_copy_not_a_lag() -> None:
    assert _mark(_STOPPED) == "first copy: keys to 40"
    assert _lag(_STOPPED, "2024-03-02 09:00:00", True) == "first copy"
    assert _lag(_DONE, "2024-03-01 10:00:00", True) == "1 h 00 m"


def test_the_warehouse_waits_for_an_unfinished_replica_first_copy() -> None:
    # A warehouse-only run (no replica leg) would copy the replica's rows so far and set a
    # watermark past rows the replica has yet to load.
    for warehouse in (None, _DONE, _STOPPED):
        for full in (False, True):
            options = _Options(
                replica=False, warehouse=True, full=full, reconcile=False, schema="raw"
            )
            plan = _warehouse_leg(False, options, None, _STOPPED, warehouse, True, None)
            assert plan.action is Action.UNCHANGED and "unfinished" in plan.reason
    # With the replica leg in the same run, the warehouse follows it.
    resumed = _replica_leg("t", False, _OPTIONS, _STOPPED, True, None, None)
    assert _warehouse_leg(False, _OPTIONS, resumed, _STOPPED, None, True, None).action is (
        Action.FIRST
    )


def test_a_stopped_first_copy_resumes_even_when_its_columns_drifted() -> None:
    plan = _replica_leg("t", False, _OPTIONS, _STOPPED, True, True, None, drifted=True)
    assert plan.action is Action.FIRST
