"""The dbt sources.yml text: pure."""

from __future__ import annotations

import yaml

from aioetl.config._resolve import TABLE_IMPORTANCE, check_tables
from aioetl.replication.dbt import FRESHNESS, dbt_sources


def test_every_importance_has_a_freshness_that_warns_before_it_fails() -> None:
    assert set(FRESHNESS) == set(TABLE_IMPORTANCE)
    for freshness in FRESHNESS.values():
        assert freshness is None or 0 < freshness.warn_hours < freshness.error_hours


def test_tables_in_name_order_with_their_importance() -> None:
    tables = check_tables(
        {
            "tables": {
                "patient": {
                    "primary_key": "PatNum",
                    "extraction_strategy": "incremental",
                    "incremental_column": "DateTStamp",
                    "table_importance": "critical",
                    "estimated_rows": 12345,
                },
                "definition": {"primary_key": "DefNum", "table_importance": "reference"},
                "apptfield": {"primary_key": ["AptNum", "FieldName"]},
            }
        },
        "tables.yml",
    )
    text = dbt_sources(tables, database="analytics", schema="raw")
    assert text == dbt_sources(dict(reversed(tables.items())), database="analytics", schema="raw")
    [source] = yaml.safe_load(text)["sources"]
    assert (source["name"], source["database"], source["schema"]) == (
        "opendental",
        "analytics",
        "raw",
    )
    assert source["loaded_at_field"] == "_aioetl_loaded_at"
    found = {t["name"]: t for t in source["tables"]}
    assert list(found) == ["apptfield", "definition", "patient"]
    assert found["definition"]["freshness"] is None
    assert found["apptfield"]["freshness"]["error_after"] == {"count": 168, "period": "hour"}
    assert found["patient"]["description"] == (
        "Copied by aioetl (incremental on DateTStamp); key PatNum; about 12,345 rows by the "
        "source's estimate; importance critical."
    )
    assert "key AptNum, FieldName;" in found["apptfield"]["description"]
