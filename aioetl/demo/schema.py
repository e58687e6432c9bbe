"""The demo clinic's tables: OpenDental 24.3 column names and MySQL types, as constants.

Every table is ``ENGINE=MyISAM``; the OpenDental tables are ``DEFAULT CHARSET=utf8mb3``
and ``legacy_note`` (a leftover of the previous practice-management system) is ``latin1``.
Column definitions follow a real OpenDental 24.x ``SHOW CREATE TABLE`` (including its
quirks: nullable ``varchar`` columns with ``DEFAULT ''``, ``'0000-00-00'`` defaults on old
date columns), with a realistic subset of columns per table. Two columns are not
OpenDental's and say so where they are defined: ``payment.PayAmtLegacy`` and
``securitylog.LogHash``.

All SQL text here is built from the constants in this module only; identifiers are
checked to be plain names and quoted with backticks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DEMO_TABLES",
    "TABLES",
    "TABLES_BY_NAME",
    "Column",
    "Table",
    "count_rows_sql",
    "create_table_sql",
    "delete_rows_sql",
    "drop_table_sql",
    "load_data_sql",
]

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_STAMP: Final = "timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"
_KEY: Final = "bigint(20) NOT NULL"
_PK: Final = "bigint(20) NOT NULL AUTO_INCREMENT"
_MIN_DATE: Final = "date NOT NULL DEFAULT '0001-01-01'"
_MIN_DATETIME: Final = "datetime NOT NULL DEFAULT '0001-01-01 00:00:00'"
_MONEY: Final = "double NOT NULL DEFAULT 0"
_ENUM: Final = "tinyint(3) unsigned NOT NULL DEFAULT 0"


def _quote(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return f"`{name}`"


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its name and everything after the name in ``CREATE TABLE``.

    ``hex_loaded`` columns are binary: the load file carries them as hexadecimal text,
    which ``LOAD DATA`` turns back into bytes with ``UNHEX()``, so raw bytes never pass
    through the character-set conversion of the file.
    """

    name: str
    definition: str
    hex_loaded: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    """A demo table: columns in file order, primary key, change stamp and secondary keys."""

    name: str
    columns: tuple[Column, ...]
    primary_key: str
    change_stamp: str | None = None
    charset: str = "utf8mb3"
    keys: tuple[str, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in file (and table) order."""
        return tuple(column.name for column in self.columns)


def _cols(*pairs: tuple[str, str]) -> tuple[Column, ...]:
    return tuple(Column(name, definition) for name, definition in pairs)


PATIENT: Final = Table(
    name="patient",
    primary_key="PatNum",
    change_stamp="DateTStamp",
    keys=("Guarantor", "DateTStamp"),
    columns=_cols(
        ("PatNum", _PK),
        ("LName", "varchar(100) DEFAULT ''"),
        ("FName", "varchar(100) DEFAULT ''"),
        ("MiddleI", "varchar(100) DEFAULT ''"),
        ("Preferred", "varchar(100) DEFAULT ''"),
        ("PatStatus", _ENUM),
        ("Gender", _ENUM),
        ("Position", _ENUM),
        ("Birthdate", _MIN_DATE),
        ("SSN", "varchar(100) DEFAULT ''"),
        ("Address", "varchar(100) DEFAULT ''"),
        ("Address2", "varchar(100) DEFAULT ''"),
        ("City", "varchar(100) DEFAULT ''"),
        ("State", "varchar(100) DEFAULT ''"),
        ("Zip", "varchar(100) DEFAULT ''"),
        ("HmPhone", "varchar(30) DEFAULT ''"),
        ("WkPhone", "varchar(30) DEFAULT ''"),
        ("WirelessPhone", "varchar(30) DEFAULT ''"),
        ("Guarantor", _KEY),
        ("Email", "varchar(100) DEFAULT ''"),
        ("EstBalance", _MONEY),
        ("PriProv", _KEY),
        ("SecProv", _KEY),
        ("FeeSched", _KEY),
        ("BillingType", _KEY),
        ("AddrNote", "text DEFAULT NULL"),
        ("FamFinUrgNote", "text DEFAULT NULL"),
        ("Bal_0_30", _MONEY),
        ("Bal_31_60", _MONEY),
        ("Bal_61_90", _MONEY),
        ("BalOver90", _MONEY),
        ("InsEst", _MONEY),
        ("BalTotal", _MONEY),
        ("DateFirstVisit", _MIN_DATE),
        ("ClinicNum", _KEY),
        ("SchedBeforeTime", "time DEFAULT NULL"),
        ("DateTStamp", _STAMP),
        ("DateTimeDeceased", _MIN_DATETIME),
        ("SecDateEntry", _MIN_DATE),
        ("SecurityHash", "varchar(255) NOT NULL"),
    ),
)

APPOINTMENT: Final = Table(
    name="appointment",
    primary_key="AptNum",
    change_stamp="DateTStamp",
    keys=("PatNum", "AptDateTime", "DateTStamp"),
    columns=_cols(
        ("AptNum", _PK),
        ("PatNum", _KEY),
        ("AptStatus", _ENUM),
        ("Pattern", "varchar(255) DEFAULT ''"),
        ("Confirmed", _KEY),
        ("TimeLocked", "tinyint(1) NOT NULL"),
        ("Op", _KEY),
        ("Note", "text DEFAULT NULL"),
        ("ProvNum", _KEY),
        ("ProvHyg", _KEY),
        ("AptDateTime", _MIN_DATETIME),
        ("NextAptNum", _KEY),
        ("UnschedStatus", _KEY),
        ("IsNewPatient", _ENUM),
        ("ProcDescript", "varchar(255) DEFAULT ''"),
        ("Assistant", _KEY),
        ("ClinicNum", _KEY),
        ("IsHygiene", _ENUM),
        ("DateTStamp", _STAMP),
        # No default on purpose: older OpenDental databases have none, and with
        # sql_mode='' unset values are stored as real zero dates.
        ("DateTimeArrived", "datetime NOT NULL"),
        ("DateTimeSeated", "datetime NOT NULL"),
        ("DateTimeDismissed", "datetime NOT NULL"),
        ("InsPlan1", _KEY),
        ("InsPlan2", _KEY),
        ("DateTimeAskedToArrive", _MIN_DATETIME),
        ("ProcsColored", "text NOT NULL"),
        ("ColorOverride", "int(11) NOT NULL"),
        ("AppointmentTypeNum", _KEY),
        ("SecUserNumEntry", _KEY),
        ("SecDateTEntry", _MIN_DATETIME),
        ("Priority", "tinyint(4) NOT NULL"),
        ("ProvBarText", "varchar(60) NOT NULL"),
        ("SecurityHash", "varchar(255) NOT NULL"),
    ),
)

PROCEDURELOG: Final = Table(
    name="procedurelog",
    primary_key="ProcNum",
    change_stamp="DateTStamp",
    keys=("PatNum", "AptNum", "DateTStamp"),
    columns=_cols(
        ("ProcNum", _PK),
        ("PatNum", _KEY),
        ("AptNum", _KEY),
        ("ProcDate", _MIN_DATE),
        ("ProcFee", _MONEY),
        ("Surf", "varchar(10) DEFAULT ''"),
        ("ToothNum", "varchar(2) DEFAULT ''"),
        ("Priority", _KEY),
        ("ProcStatus", _ENUM),
        ("ProvNum", _KEY),
        ("PlannedAptNum", _KEY),
        ("PlaceService", _ENUM),
        ("Prosthesis", "char(1) DEFAULT ''"),
        ("ClaimNote", "varchar(80) DEFAULT ''"),
        ("DateEntryC", _MIN_DATE),
        ("ClinicNum", _KEY),
        ("MedicalCode", "varchar(15) CHARACTER SET utf8mb3 COLLATE utf8mb3_bin DEFAULT ''"),
        ("CodeNum", _KEY),
        ("CodeMod1", "char(2) DEFAULT NULL"),
        ("CodeMod2", "char(2) DEFAULT NULL"),
        ("CodeMod3", "char(2) DEFAULT NULL"),
        ("CodeMod4", "char(2) DEFAULT NULL"),
        ("UnitQty", "int(11) NOT NULL"),
        ("ProcTime", "time NOT NULL"),
        ("DateTStamp", _STAMP),
        ("DrugUnit", "tinyint(4) NOT NULL"),
        ("DrugQty", "float NOT NULL"),
        ("IsLocked", "tinyint(4) NOT NULL"),
        ("Discount", "double NOT NULL"),
        ("SecUserNumEntry", _KEY),
        ("SecDateEntry", _MIN_DATETIME),
        ("DateComplete", _MIN_DATE),
        # Signed: the generator stores -1 ("not set") on procedures imported by the
        # conversion, the way the schema notes describe blank signed enums.
        ("Urgency", "tinyint(4) NOT NULL"),
    ),
)

PAYMENT: Final = Table(
    name="payment",
    primary_key="PayNum",
    change_stamp="SecDateTEdit",
    keys=("PatNum", "SecDateTEdit"),
    columns=_cols(
        ("PayNum", _PK),
        ("PayType", _KEY),
        ("PayDate", "date NOT NULL DEFAULT '0000-00-00'"),
        ("PayAmt", _MONEY),
        ("CheckNum", "varchar(25) DEFAULT ''"),
        ("BankBranch", "varchar(25) DEFAULT ''"),
        ("PayNote", "text NOT NULL"),
        ("IsSplit", "tinyint(1) unsigned NOT NULL DEFAULT 0"),
        ("PatNum", _KEY),
        ("ClinicNum", _KEY),
        ("DateEntry", _MIN_DATE),
        ("DepositNum", _KEY),
        ("Receipt", "text NOT NULL"),
        ("IsRecurringCC", "tinyint(4) NOT NULL"),
        ("SecUserNumEntry", _KEY),
        ("SecDateTEdit", _STAMP),
        ("PaymentSource", "tinyint(4) NOT NULL"),
        ("ProcessStatus", "tinyint(4) NOT NULL"),
        ("RecurringChargeDate", _MIN_DATE),
        ("ExternalId", "varchar(255) NOT NULL"),
        ("PaymentStatus", "tinyint(4) NOT NULL"),
        ("IsCcCompleted", "tinyint(4) NOT NULL"),
        ("MerchantFee", "double NOT NULL"),
        # Not an OpenDental column: the conversion from the previous system added it
        # (that system kept exact decimals) and it was never dropped. NULL except on
        # the credit balances imported at go-live.
        ("PayAmtLegacy", "decimal(10,2) DEFAULT NULL"),
    ),
)

PAYSPLIT: Final = Table(
    name="paysplit",
    primary_key="SplitNum",
    change_stamp="SecDateTEdit",
    keys=("PayNum", "ProcNum", "SecDateTEdit"),
    columns=_cols(
        ("SplitNum", _PK),
        ("SplitAmt", _MONEY),
        ("PatNum", _KEY),
        ("ProcDate", "date NOT NULL DEFAULT '0000-00-00'"),
        ("PayNum", _KEY),
        ("IsDiscount", "tinyint(1) unsigned NOT NULL DEFAULT 0"),
        ("DiscountType", _ENUM),
        ("ProvNum", _KEY),
        ("PayPlanNum", _KEY),
        ("DatePay", _MIN_DATE),
        ("ProcNum", _KEY),
        ("DateEntry", _MIN_DATE),
        ("UnearnedType", _KEY),
        ("ClinicNum", _KEY),
        ("SecUserNumEntry", _KEY),
        ("SecDateTEdit", _STAMP),
        ("FSplitNum", _KEY),
        ("AdjNum", _KEY),
        ("PayPlanChargeNum", _KEY),
        ("PayPlanDebitType", "tinyint(4) NOT NULL"),
        ("SecurityHash", "varchar(255) NOT NULL"),
    ),
)

CLAIM: Final = Table(
    name="claim",
    primary_key="ClaimNum",
    change_stamp="SecDateTEdit",
    keys=("PatNum", "SecDateTEdit"),
    columns=_cols(
        ("ClaimNum", _PK),
        ("PatNum", _KEY),
        ("DateService", _MIN_DATE),
        ("DateSent", _MIN_DATE),
        ("ClaimStatus", "char(1) DEFAULT ''"),
        ("DateReceived", _MIN_DATE),
        ("PlanNum", _KEY),
        ("ProvTreat", _KEY),
        ("ClaimFee", _MONEY),
        ("InsPayEst", _MONEY),
        ("InsPayAmt", _MONEY),
        ("DedApplied", _MONEY),
        ("IsProsthesis", "char(1) DEFAULT ''"),
        ("ReasonUnderPaid", "varchar(255) DEFAULT ''"),
        ("ClaimNote", "varchar(400) DEFAULT NULL"),
        ("ClaimType", "varchar(255) DEFAULT ''"),
        ("ProvBill", _KEY),
        ("PlaceService", _ENUM),
        ("AccidentRelated", "char(1) DEFAULT ''"),
        ("AccidentDate", _MIN_DATE),
        ("IsOrtho", "tinyint(1) unsigned NOT NULL DEFAULT 0"),
        ("PatRelat", _ENUM),
        ("PlanNum2", _KEY),
        ("WriteOff", _MONEY),
        ("ClinicNum", _KEY),
        ("ClaimForm", _KEY),
        ("InsSubNum", _KEY),
        ("CustomTracking", _KEY),
        ("CorrectionType", "tinyint(4) NOT NULL"),
        ("ClaimIdentifier", "varchar(255) NOT NULL"),
        ("SecUserNumEntry", _KEY),
        ("SecDateEntry", _MIN_DATE),
        ("SecDateTEdit", _STAMP),
        ("SecurityHash", "varchar(255) NOT NULL"),
        ("Narrative", "text NOT NULL"),
    ),
)

DEFINITION: Final = Table(
    name="definition",
    primary_key="DefNum",
    columns=_cols(
        ("DefNum", _PK),
        ("Category", _ENUM),
        ("ItemOrder", "smallint(5) unsigned NOT NULL DEFAULT 0"),
        ("ItemName", "varchar(255) DEFAULT ''"),
        ("ItemValue", "varchar(255) DEFAULT ''"),
        ("ItemColor", "int(11) NOT NULL DEFAULT 0"),
        ("IsHidden", _ENUM),
    ),
)

SECURITYLOG: Final = Table(
    name="securitylog",
    primary_key="SecurityLogNum",
    keys=("PatNum", "LogDateTime"),
    columns=(
        *_cols(
            ("SecurityLogNum", _PK),
            ("PermType", "smallint(6) NOT NULL"),
            ("UserNum", _KEY),
            ("LogDateTime", "datetime NOT NULL DEFAULT '0000-00-00 00:00:00'"),
            ("LogText", "text DEFAULT NULL"),
            ("PatNum", _KEY),
            ("CompName", "varchar(255) NOT NULL"),
            ("FKey", _KEY),
            ("LogSource", "tinyint(4) NOT NULL"),
            ("DefNum", _KEY),
            ("DefNumError", _KEY),
            ("DateTPrevious", _MIN_DATETIME),
        ),
        # Not a securitylog column: OpenDental keeps this hash in the separate
        # securityloghash table (as text). Inlined here as raw SHA-256 bytes so the
        # demo has one binary column; NULL on rows logged before hashing was enabled.
        Column("LogHash", "blob DEFAULT NULL", hex_loaded=True),
    ),
)

LEGACY_NOTE: Final = Table(
    name="legacy_note",
    primary_key="NoteNum",
    charset="latin1",
    columns=_cols(
        ("NoteNum", _PK),
        ("PatNum", "bigint(20) DEFAULT NULL"),
        ("NoteText", "varchar(255) DEFAULT NULL"),
        ("DateEntry", "date DEFAULT NULL"),
    ),
)

#: Every demo table, in creation order.
TABLES: Final[tuple[Table, ...]] = (
    PATIENT,
    APPOINTMENT,
    PROCEDURELOG,
    PAYMENT,
    PAYSPLIT,
    CLAIM,
    DEFINITION,
    SECURITYLOG,
    LEGACY_NOTE,
)

#: The names of the demo tables, in creation order.
DEMO_TABLES: Final[tuple[str, ...]] = tuple(table.name for table in TABLES)

TABLES_BY_NAME: Final[dict[str, Table]] = {table.name: table for table in TABLES}


def create_table_sql(table: Table) -> str:
    """``CREATE TABLE`` for ``table`` (MyISAM, the table's charset, stamp and keys)."""
    lines = [f"  {_quote(column.name)} {column.definition}" for column in table.columns]
    lines.append(f"  PRIMARY KEY ({_quote(table.primary_key)})")
    lines.extend(f"  KEY {_quote(key)} ({_quote(key)})" for key in table.keys)
    body = ",\n".join(lines)
    return (
        f"CREATE TABLE {_quote(table.name)} (\n{body}\n) "
        f"ENGINE=MyISAM DEFAULT CHARSET={table.charset}"
    )


def drop_table_sql(table: Table) -> str:
    """``DROP TABLE IF EXISTS`` for ``table``."""
    return f"DROP TABLE IF EXISTS {_quote(table.name)}"


def load_data_sql(table: Table) -> str:
    """``LOAD DATA LOCAL INFILE %s`` for ``table``'s tab-separated file; the path is bound.

    The file is UTF-8 (``CHARACTER SET utf8mb4``; the server converts to the table's
    charset), fields are separated by tabs, lines end with ``\\n``, and backslash escapes
    ``\\\\``, ``\\t``, ``\\n``, ``\\r`` and ``\\N`` (NULL) are understood.
    """
    targets: list[str] = []
    assignments: list[str] = []
    for column in table.columns:
        name = _quote(column.name)
        if column.hex_loaded:
            targets.append(f"@{name}")
            assignments.append(f"{name} = UNHEX(@{name})")
        else:
            targets.append(name)
    sql = (
        f"LOAD DATA LOCAL INFILE %s INTO TABLE {_quote(table.name)} "
        "CHARACTER SET utf8mb4 "
        "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' "
        "LINES TERMINATED BY '\\n' "
        f"({', '.join(targets)})"
    )
    if assignments:
        sql += f" SET {', '.join(assignments)}"
    return sql


def delete_rows_sql(table: Table, count: int) -> str:
    """``DELETE`` of ``count`` rows by primary key; the keys are bound (``%s`` each)."""
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    placeholders = ", ".join(["%s"] * count)
    # Identifiers are this module's constants; every value is a bound parameter.
    return (
        f"DELETE FROM {_quote(table.name)} "  # noqa: S608
        f"WHERE {_quote(table.primary_key)} IN ({placeholders})"
    )


def count_rows_sql(table: Table) -> str:
    """``SELECT COUNT(*)`` of ``table``."""
    return f"SELECT COUNT(*) FROM {_quote(table.name)}"  # noqa: S608 - constant identifier
