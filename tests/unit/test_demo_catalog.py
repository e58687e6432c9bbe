"""The full-size demo catalog's shapes (pure): the mix a whole-clinic run must meet."""

from __future__ import annotations

from aioetl.demo.catalog import catalog_tables, create_table_sql, insert_sql
from aioetl.demo.schema import DEMO_TABLES
from aioetl.replication.discover import is_scratch


def test_four_hundred_tables_have_the_mix_of_a_real_clinic() -> None:
    shapes = catalog_tables(400 - len(DEMO_TABLES), seed=42)
    assert len(shapes) == 391
    names = [s.name for s in shapes]
    assert len(set(names)) == len(names)
    assert not set(names) & {*DEMO_TABLES, "preference"}
    stamped = sum(1 for s in shapes if s.stamp is not None) / len(shapes)
    assert 0.65 < stamped < 0.85
    innodb = sum(1 for s in shapes if s.engine == "InnoDB") / len(shapes)
    assert 0.15 < innodb < 0.35
    assert sum(1 for s in shapes if s.key == "none") == 3
    assert sum(1 for s in shapes if s.key == "composite") == 4
    assert {s.stamp for s in shapes} >= {"DateTStamp", "SecDateTEdit", "LastModified"}
    assert 3 <= sum(1 for s in shapes if is_scratch(s.name)) <= 6
    rows = [s.rows for s in shapes]
    assert min(rows) == 0 and max(rows) <= 40_000
    assert 250_000 < sum(rows) < 600_000
    assert catalog_tables(391, seed=42) == shapes
    assert catalog_tables(391, seed=43) != shapes


def test_sql_is_built_from_quoted_constants() -> None:
    for shape in catalog_tables(40, seed=1):
        assert f"CREATE TABLE `{shape.name}`" in create_table_sql(shape)
        assert "%s" in insert_sql(shape) and "'" not in insert_sql(shape)


def test_the_clis_count_of_demo_tables_is_the_demo_clinics() -> None:
    from aioetl.cli import _DEMO_CLINIC_TABLES

    assert len(DEMO_TABLES) == _DEMO_CLINIC_TABLES


def test_the_cli_counts_the_demo_clinics_own_tables() -> None:
    from aioetl.cli import _DEMO_CLINIC_TABLES
    from aioetl.demo import DEMO_TABLES

    assert len(DEMO_TABLES) == _DEMO_CLINIC_TABLES
