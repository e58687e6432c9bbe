"""A full-size OpenDental-like catalog around the demo clinic: hundreds of small tables.

A real OpenDental database holds 400 to 600 tables; most are small lookup, history and
configuration tables. :func:`create_demo_catalog` adds such tables beside the demo
clinic's, so that discovery and whole-clinic runs can be tried on a realistic catalog:

- names from OpenDental's schema (then numbered variants), a few scratch leftovers
  (``tmp_``, ``backup_``, ``_old``…), never ``preference`` (the marker of a real database);
- MyISAM mostly, InnoDB for about one in four;
- about three in four stamped (``DateTStamp`` or ``SecDateTEdit``, ``ON UPDATE
  CURRENT_TIMESTAMP``; two with a differently named stamp), the rest unstamped;
- single ``bigint AUTO_INCREMENT`` keys, a few composite keys (``(<Table>Num, ItemOrder)``,
  four rows per leading value), a few tables without one;
- 0 to about 40,000 rows (most under 1,000; about 1,000 on average).

Deterministic for a seed: the same shapes and the same rows. Every generated table carries
the comment :data:`CATALOG_COMMENT`, which is how a rerun finds (and drops) the previous
run's tables without touching anything else. Rows go in with multi-row ``INSERT``
statements, values bound.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl.core.errors_map import is_database_error, translate
from aioetl.demo.generate import DEFAULT_SEED
from aioetl.demo.load import _guard_database
from aioetl.demo.schema import DEMO_TABLES, _quote
from aioetl.errors import ConfigError, DatabaseError

__all__ = [
    "CATALOG_COMMENT",
    "DEFAULT_CATALOG_TABLES",
    "CatalogTable",
    "catalog_tables",
    "create_demo_catalog",
]

logger = logging.getLogger("aioetl.demo")

#: Tables of a full-size catalog, the demo clinic's included.
DEFAULT_CATALOG_TABLES: Final = 400
#: The table comment that marks a generated catalog table.
CATALOG_COMMENT: Final = "aioetl demo catalog"
#: Rows per INSERT statement (aiomysql also splits at its own statement size limit).
_INSERT_ROWS: Final = 2_000
_LARGEST: Final = 40_000
_STAMP_BASE: Final = datetime(2019, 1, 7, 8, 0, 0)
_STAMP_SPAN: Final = 7 * 365 * 86_400

#: OpenDental 24.3 tables (small and medium ones) that the demo clinic does not have;
#: a word list reads better than 200 quoted strings.
_OPENDENTAL_NAMES: Final = (  # noqa: SIM905
    "account accountingautopay alertitem allergy allergydef appointmentrule appointmenttype "
    "apptfield apptfielddef apptreminderrule apptview apptviewitem asapcomm autocode "
    "autocodecond autocodeitem automation autonote autonotecontrol benefit "
    "canadiannetwork carrier cdspermission centralconnection chartview claimattach "
    "claimcondcodelog claimform claimformitem claimpayment claimproc claimsnapshot "
    "claimtracking claimvalcodelog clearinghouse clinic clockevent codesystem commlog "
    "computer computerpref confirmationrequest contact county covcat covspan cpt "
    "creditcard custrefentry dashboardar deposit disease diseasedef displayfield document "
    "drugmanufacturer drugunit educationalresource ehrlab electid emailaddress emailattach "
    "emailmessage emailtemplate employee employer encounter entrylog eobattach equipment "
    "erxlog eservicesignal etrans etransmessagetext evaluation famaging fee feesched "
    "formpat grouppermission guardian hcpcs histappointment hl7def icd10 icd9 "
    "insfilingcode insplan inssub installmentplan insverify journalentry labcase "
    "laboratory labturnaround letter loinc medication medicationpat mount mountitem "
    "operatory orthochart patfield patfielddef patientnote patientrace patplan payplan "
    "payplancharge payperiod perioexam periomeasure pharmacy phonenumber popup printer "
    "procapptcolor procbutton procedurecode procgroupitem procnote proctp program provider "
    "providerident question quickpastecat quickpastenote recall recalltrigger recalltype "
    "reconcile refattach referral registrationkey repeatcharge reqstudent rxalert rxdef "
    "rxnorm rxpat schedule scheduleop schoolclass screen securityloghash sheet sheetdef "
    "sheetfield sheetfielddef sigbutdef sigmessage site smsfrommobile smstomobile snomed "
    "statement stmtlink supply supplier supplyorder task taskhist tasklist tasknote "
    "terminalactive timeadjust toolbutitem toothinitial transaction treatplan "
    "treatplanattach tsitranslog ucum userod usergroup userodpref vaccinedef vaccinepat "
    "vitalsign wikipage xchargetransaction xwebresponse zipcode"
).split()
#: Leftovers real clinics hold: copies and imports someone forgot.
_SCRATCH_NAMES: Final = (
    "tmp_patient_import",
    "temp_fee_update",
    "backup_claimproc_2021",
    "bak_feesched",
    "procedurecode_old",
)
#: Differently named stamps (``ON UPDATE CURRENT_TIMESTAMP`` all the same).
_ODD_STAMPS: Final = ("LastModified", "DateTEdit")
_NO_KEY_TABLES: Final = 3
_COMPOSITE_TABLES: Final = 4


@dataclass(frozen=True, slots=True)
class CatalogTable:
    """One generated table: name, engine, key, stamp and row count."""

    name: str
    engine: str
    #: ``single``, ``composite`` or ``none``.
    key: str
    stamp: str | None
    rows: int

    @property
    def key_column(self) -> str:
        return name_to_key(self.name)


def name_to_key(name: str) -> str:
    """OpenDental's key naming: ``<Table>Num``."""
    return name[:1].upper() + name[1:].replace("_", "") + "Num"


def _names(count: int) -> list[str]:
    core = {name.lower() for name in DEMO_TABLES} | {"preference"}
    pool = [name for name in _OPENDENTAL_NAMES if name not in core]
    names = list(_SCRATCH_NAMES[: max(0, min(len(_SCRATCH_NAMES), count // 40))])
    round_ = 0
    while len(names) < count:
        for base in pool:
            if len(names) == count:
                break
            names.append(base if round_ == 0 else f"{base}{round_ + 1}")
        round_ += 1
    return names


def _size(rng: random.Random) -> int:
    """Most tables hold hundreds of rows, a few none, a few tens of thousands."""
    draw = rng.random()
    if draw < 0.1:
        return 0
    if draw < 0.12:
        return rng.randint(10_000, _LARGEST)
    return rng.randint(1, 1_000)


def catalog_tables(count: int, seed: int = DEFAULT_SEED) -> list[CatalogTable]:
    """The shapes of ``count`` generated tables (the demo clinic's not included)."""
    if count < 0:
        raise ConfigError(f"count must be >= 0, got {count}")
    rng = random.Random(f"catalog-{seed}")
    names = _names(count)
    special = rng.sample(range(count), min(count, _NO_KEY_TABLES + _COMPOSITE_TABLES + 2))
    no_key = set(special[:_NO_KEY_TABLES])
    composite = set(special[_NO_KEY_TABLES : _NO_KEY_TABLES + _COMPOSITE_TABLES])
    odd = special[_NO_KEY_TABLES + _COMPOSITE_TABLES :]
    tables: list[CatalogTable] = []
    for index, name in enumerate(names):
        key = "none" if index in no_key else "composite" if index in composite else "single"
        draw = rng.random()
        stamp: str | None
        if index in odd:
            stamp = _ODD_STAMPS[odd.index(index)]
        elif draw < 0.375:
            stamp = "DateTStamp"
        elif draw < 0.75:
            stamp = "SecDateTEdit"
        else:
            stamp = None
        engine = "InnoDB" if rng.random() < 0.25 else "MyISAM"
        tables.append(CatalogTable(name, engine, key, stamp, _size(rng)))
    return tables


def _columns(table: CatalogTable) -> list[tuple[str, str]]:
    """Column names and definitions, in order."""
    columns: list[tuple[str, str]] = []
    if table.key == "single":
        columns.append((table.key_column, "bigint(20) NOT NULL AUTO_INCREMENT"))
    else:
        columns.append((table.key_column, "bigint(20) NOT NULL DEFAULT 0"))
    if table.key == "composite":
        columns.append(("ItemOrder", "int(11) NOT NULL DEFAULT 0"))
    columns += [
        ("FKey", "bigint(20) NOT NULL DEFAULT 0"),
        ("ItemName", "varchar(255) DEFAULT ''"),
        ("ItemValue", "double NOT NULL DEFAULT 0"),
        ("ItemStatus", "tinyint(3) unsigned NOT NULL DEFAULT 0"),
        ("DateEntry", "date NOT NULL DEFAULT '0001-01-01'"),
        ("Note", "text DEFAULT NULL"),
    ]
    if table.stamp is not None:
        columns.append(
            (
                table.stamp,
                "timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP",
            )
        )
    return columns


def create_table_sql(table: CatalogTable) -> str:
    """``CREATE TABLE`` for a generated table (the comment marks it as generated)."""
    lines = [f"  {_quote(name)} {definition}" for name, definition in _columns(table)]
    key = _quote(table.key_column)
    if table.key == "single":
        lines.append(f"  PRIMARY KEY ({key})")
    elif table.key == "composite":
        lines.append(f"  PRIMARY KEY ({key}, `ItemOrder`)")
    if table.stamp is not None:
        lines.append(f"  KEY {_quote(table.stamp)} ({_quote(table.stamp)})")
    return (
        f"CREATE TABLE {_quote(table.name)} (\n" + ",\n".join(lines) + f"\n) ENGINE={table.engine}"
        f" DEFAULT CHARSET=utf8mb3 COMMENT='{CATALOG_COMMENT}'"
    )


def _rows(table: CatalogTable, seed: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(f"{table.name}-{seed}")
    for number in range(1, table.rows + 1):
        row: list[Any]
        if table.key == "single":
            row = [number]
        elif table.key == "composite":
            # Up to four rows share a leading key value: ties within and across pages.
            row = [(number - 1) // 4 + 1, (number - 1) % 4]
        else:
            row = [rng.randint(1, 5_000)]
        entry = _STAMP_BASE + timedelta(seconds=rng.randrange(_STAMP_SPAN))
        row += [
            rng.randint(0, 20_000) if rng.random() < 0.8 else 0,
            f"{table.name} item {number}",
            round(rng.uniform(0, 500), 2),
            rng.randint(0, 4),
            entry.date() if rng.random() < 0.9 else "0001-01-01",
            None if rng.random() < 0.5 else f"note {rng.randint(0, 10**6)}",
        ]
        if table.stamp is not None:
            row.append(entry + timedelta(seconds=rng.randrange(86_400 * 30)))
        yield tuple(row)


def insert_sql(table: CatalogTable) -> str:
    """The ``INSERT`` of one row (aiomysql's executemany sends many per statement)."""
    names = [name for name, _ in _columns(table)]
    quoted = ", ".join(_quote(name) for name in names)
    marks = ", ".join(["%s"] * len(names))
    # Identifiers are this module's constants; every value is bound.
    return f"INSERT INTO {_quote(table.name)} ({quoted}) VALUES ({marks})"  # noqa: S608


async def _drop_previous(cursor: Any) -> int:
    await cursor.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_COMMENT = %s",
        (CATALOG_COMMENT,),
    )
    previous = [str(name) for (name,) in await cursor.fetchall()]
    for name in previous:
        await cursor.execute(f"DROP TABLE {_quote(name)}")
    return len(previous)


async def _fill(cursor: Any, driver: Any, table: CatalogTable, seed: int) -> None:
    await cursor.execute(create_table_sql(table))
    batch: list[tuple[Any, ...]] = []
    sql = insert_sql(table)
    for row in _rows(table, seed):
        batch.append(row)
        if len(batch) == _INSERT_ROWS:
            await cursor.executemany(sql, batch)
            batch.clear()
    if batch:
        await cursor.executemany(sql, batch)
    await driver.commit()  # InnoDB tables: the connection is not in autocommit mode


async def create_demo_catalog(
    engine: AsyncEngine,
    *,
    tables: int,
    seed: int = DEFAULT_SEED,
) -> dict[str, int]:
    """Add generated tables beside the demo clinic until the database holds ``tables``.

    ``tables`` counts the demo clinic's own tables (create it first with
    :func:`~aioetl.demo.create_demo_clinic`); the previous run's generated tables are
    dropped first. Returns the rows of each generated table. Refuses a database that looks
    like a real OpenDental one (ConfigError), like the demo clinic does.
    """
    if isinstance(tables, bool) or not isinstance(tables, int) or tables < len(DEMO_TABLES):
        raise ConfigError(
            f"tables must be an integer >= {len(DEMO_TABLES)} (the demo clinic's own), "
            f"got {tables!r}"
        )
    if engine.dialect.name != "mysql" or engine.dialect.driver != "aiomysql":
        raise ConfigError(
            f"the demo catalog needs a mysql+aiomysql engine, got {engine.url.drivername}"
        )
    shapes = catalog_tables(tables - len(DEMO_TABLES), seed)
    started = time.perf_counter()
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            if driver is None:
                raise ConfigError("the engine's connection has no aiomysql connection behind it")
            async with driver.cursor() as cursor:
                await _guard_database(cursor)
                dropped = await _drop_previous(cursor)
                for shape in shapes:
                    await _fill(cursor, driver, shape, seed)
    except (ConfigError, DatabaseError):
        raise
    except Exception as exc:
        if not is_database_error(exc):
            raise
        raise translate(exc, database=engine.url.database, secrets=(engine.url.password,)) from exc
    counts = {shape.name: shape.rows for shape in shapes}
    logger.info(
        "demo catalog: %d generated tables (%d rows; %d previous dropped) in %.1fs",
        len(shapes),
        sum(counts.values()),
        dropped,
        time.perf_counter() - started,
    )
    return counts
