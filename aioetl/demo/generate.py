"""A deterministic synthetic OpenDental clinic, as tab-separated rows for ``LOAD DATA``.

The clinic is simulated day by day from its go-live (2019-01-07, after a conversion from
another practice-management system) up to the fixed "now" :data:`NOW` (2026-11-01): new
families call in, appointments are booked, confirmed by eConfirmations, broken or
completed, procedures set complete, insurance claims sent and paid by ERA batches,
payments taken at checkout, deposited on Fridays, and every action is written to the
audit log. Primary keys grow with creation time, as in a real database; in securitylog,
the primary key grows with LogDateTime.

Guarantees:

- The output depends only on ``patients`` and ``seed``: one ``random.Random`` per
  generation, no wall clock, no global state, and the same for any ``chunk_rows``. Row
  counts grow linearly with ``patients``, except ``definition`` (configuration: always
  600 rows). Every time stamp is before :data:`NOW`.
- Each line holds one row's fields in the column order of :mod:`aioetl.demo.schema`,
  separated by tabs; ``\\\\``, tab, newline and carriage return are backslash-escaped
  and ``\\N`` is NULL. Binary columns are hexadecimal. Text is Unicode within the Basic
  Multilingual Plane (``utf8mb3``); ``legacy_note`` text is latin1-representable.
- Ids listed in :attr:`Chunk.deleted` are rows that are written and must then be
  deleted, leaving the primary-key gaps of OpenDental's hard deletes.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Final

from aioetl.demo.schema import DEMO_TABLES

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "DEFAULT_PATIENTS",
    "DEFAULT_SEED",
    "NOW",
    "Chunk",
    "generate_clinic",
]

#: Patients in the default demo clinic (about a million rows in all).
DEFAULT_PATIENTS: Final = 10_000
#: The default seed.
DEFAULT_SEED: Final = 42
#: Rows buffered before a chunk is handed out (bounds memory, not the result).
DEFAULT_CHUNK_ROWS: Final = 250_000

_BASE: Final = date(2018, 1, 1)  # a Monday: day numbers below count from here
_DAY: Final = 86_400


def _day(value: date) -> int:
    return (value - _BASE).days


#: The fixed "now" of the clinic: nothing happens at or after this date.
NOW: Final = date(2026, 11, 1)
_NOW_T: Final = _day(NOW) * _DAY
_GO_LIVE: Final = _day(date(2019, 1, 7))
_CONVERSION_T: Final = _day(date(2019, 1, 5)) * _DAY + 14 * 3600 + 32 * 60 + 7
# Before this OpenDental update, unset date-times were written as real zero dates.
_UPGRADE_DAY: Final = _day(date(2021, 6, 14))
_ROW_HASH_DAY: Final = _day(date(2022, 3, 1))
_LOG_HASH_DAY: Final = _day(date(2023, 6, 1))
_FEE_UPDATE_T: Final = _day(date(2025, 1, 2)) * _DAY + 7 * 3600 + 45 * 60 + 12
_DAY_TEXT: Final = tuple((_BASE + timedelta(days=i)).isoformat() for i in range(_day(NOW) + 400))

_NULL: Final = "\\N"
_MIN_DATE: Final = "0001-01-01"
_MIN_DT: Final = "0001-01-01 00:00:00"
_ZERO_DATE: Final = "0000-00-00"
_ZERO_DT: Final = "0000-00-00 00:00:00"
_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

# Chance that a booking, payment or claim is entered twice and the copy hard-deleted.
_MISTAKE_RATE: Final = 0.03

# ---------------------------------------------------------------------------------------
# Vocabularies. Strings stay in the Basic Multilingual Plane (utf8mb3 has no 4-byte form).
# ---------------------------------------------------------------------------------------

_LAST_NAMES: Final = (
    # Common names dominate, as at a real office; the rest exercise Unicode and quoting.
    *("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis"),
    *("Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson"),
    *("Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White"),
    *("Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young"),
    *("Allen", "King", "Wright", "Scott", "Torres", "Hill", "Flores", "Green", "Adams"),
    *("Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts"),
    *("Peterson", "Olson", "Larson", "Hansen", "Schmidt", "Kowalski", "Nowak", "Patel"),
    *("Singh", "Khan", "Ahmed", "Kim", "Park", "Chen", "Wang", "Li", "Tanaka", "Nguyen"),
    *("O'Brien", "O'Connor", "D'Angelo", "McDonald", "Smith-Jones", "Van der Berg"),
    *("St. John", "de la Cruz"),
    *("Müller", "Schröder", "Strauß", "Weiß", "Gößling", "Peña", "Muñoz", "Núñez"),
    *("Ibáñez", "Gómez", "Díaz", "Sørensen", "Østergaard", "Lefèvre", "Benoît", "Côté"),
    *("Wiśniewski", "Dvořák", "Öztürk", "Yılmaz", "Çelik"),  # noqa: RUF001 - the dotless i is wanted
    *("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Đặng", "Vũ"),
    *("王", "李", "张", "刘", "陈", "佐藤", "鈴木", "김", "박"),
)
_FIRST_NAMES: Final = (
    (  # male
        *("James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph"),
        *("Thomas", "Charles", "Christopher", "Daniel", "Matthew", "Anthony", "Mark"),
        *("Steven", "Andrew", "Joshua", "Kevin", "Brian", "Liam", "Noah", "Ethan", "Lucas"),
        *("José", "Juan", "André", "François", "Jürgen", "Björn", "Søren", "Ñico", "Ömer"),
        *("Minh", "Dũng", "Văn An", "伟", "强", "太郎", "민준", "Łukasz", "Jiří"),
    ),
    (  # female
        *("Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan"),
        *("Sarah", "Karen", "Lisa", "Nancy", "Betty", "Sandra", "Margaret", "Ashley", "Emily"),
        *("Olivia", "Emma", "Ava", "Mia", "Harper", "Abigail", "Grace", "Chloe", "Hannah"),
        *("María", "Lucía", "Sofía", "Zoë", "Renée", "Chloé", "Anaïs", "Brontë", "Ingrid"),
        *("Thảo", "Hương", "Phương", "Thị Hồng", "娜", "静", "花子", "서연", "Małgorzata"),
    ),
)
_NICKNAMES: Final = ("Bob", "Bill", "Liz", "Kate", "Mike", "Tony", "Chris", "Beth", "Pepe")
_STREETS: Final = (
    *("Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Pine St", "Elm St", "Washington Blvd"),
    *("NE Alberta St", "SW Broadway", "SE Hawthorne Blvd", "N Williams Ave", "Lake Rd"),
    *("Sunset Hwy", "River View Ct", "Hillcrest Pl", "Avenida de la Peña", "Rue Saint-Étienne"),
)
_UNITS: Final = ("Apt 4B", "Unit 12", "#305", "Suite 200", "PO Box 1187", "Apt. 7")
_CITIES: Final = (
    ("Portland", "OR", "972"),
    ("Beaverton", "OR", "970"),
    ("Hillsboro", "OR", "971"),
    ("Gresham", "OR", "970"),
    ("Lake Oswego", "OR", "970"),
    ("Tigard", "OR", "972"),
    ("Salem", "OR", "973"),
    ("Vancouver", "WA", "986"),
    ("Camas", "WA", "986"),
)
_AREA_CODES: Final = ("503", "971", "360", "541")
_PATIENT_NOTES: Final = (
    "Send statements to:\r\nPO Box 1187\r\nPortland, OR 97208",
    "Owes $45.00 from 2021\t-- do not book until paid",
    'Mom says "call after 5pm"',
    "Ins card scanned to \\\\ODSERVER\\OpenDentImages\\S\\",
    "Spouse handles billing; call (503)555-0142",
    "Prefers e-mail statements — no paper",
    "Dirección de facturación: Calle Mayor 5, 2º izq.",
    "Collections agency notified 03/2022\nFollow up quarterly",
    "Typed \\N by mistake in the old system",
    "  padded note with spaces  ",
)
_APPOINTMENT_NOTES: Final = (
    "Pt prefers morning appts",
    "Needs premed - amoxicillin 2g 1hr prior",
    'Mom says "no nitrous" for the kids',
    "Call cell first\r\nLeft VM on home phone",
    "Bring new ins card\tnew employer",
    "Consent scanned to C:\\OpenDentImages\\Consents\\2024\\",
    "Wants to discuss whitening; quote $395.00",
    "Anxious pt — headphones & blanket",
    "Réservé : le patient parle français",
    "Paciente prefiere español; traer intérprete",
    "Pt's daughter will drive; pick-up @ 11:30",
    "Line 1\nLine 2\n\tindented line 3",
    "50% off per Dr. O'Neil",
    "ends with a tab\t",
    "患者希望上午预约",
    "Bệnh nhân muốn hẹn buổi sáng",
)
_PAYMENT_NOTES: Final = (
    'Check #1044 "paid in full"',
    "Paid at checkout\tthank you",
    "Pt disputes $12.50 finance charge\r\nwaived per office mgr",
    "Pago en efectivo — recibo entregado",
    "Mailed from C:\\Statements\\2023\\batch7.pdf",
)
_CLAIM_NOTES: Final = (
    "Narrative and x-rays attached",
    "Resubmitted with corrected tooth #",
    "Pt has secondary with spouse's employer",
    'Denied "missing tooth clause" - appealed',
)
_REASONS_UNDERPAID: Final = (
    "Frequency limitation",
    "Annual maximum met",
    "Downgraded to amalgam",
    "Missing tooth clause",
)
_LEGACY_NOTES: Final = (  # latin1 only (legacy_note is latin1); used in this order
    "Allergie à la pénicilline",
    "Señora prefiere citas por la mañana",
    "Müller: Überweisung folgt",
    "Kontakt: Søren Ødegård, Tel. 555-0199",
    "Niño acompañado por su mamá",
    "Pt naïve to anesthesia; café after appt OK",
    "Straße und Hausnummer geändert",
    "Ñandú Dental referral - Dr. Peña",
    "Zahnärztin: Frau Weiß",
    "paid cash\tno receipt",
    "old chart # 00412\r\nmerged 2016",
    "C:\\PMS\\notes\\00412.txt",
)
_CARRIERS: Final = (
    "Delta Dental of Oregon",
    "MetLife",
    "Cigna Dental",
    "Aetna",
    "Guardian",
    "United Concordia",
    "Regence BlueCross BlueShield",
    "Humana",
    "Principal Financial",
    "Ameritas",
    "Moda Health",
    "Sun Life",
)

# (CodeNum, ProcCode, abbreviation, fee in 2019, kind, treatment area, insurance share).
_Code = tuple[int, str, str, float, str, str, float]
_CODES: Final[dict[str, _Code]] = {
    code[1]: code
    for code in (
        (1, "D0120", "PerEx", 62.0, "exam", "none", 1.0),
        (2, "D0140", "LimEx", 85.0, "exam", "none", 1.0),
        (3, "D0150", "CompEx", 105.0, "exam", "none", 1.0),
        (4, "D0210", "FMX", 140.0, "xray", "none", 1.0),
        (5, "D0220", "PA", 32.0, "xray", "tooth", 1.0),
        (6, "D0272", "2BW", 58.0, "xray", "none", 1.0),
        (7, "D0274", "4BW", 75.0, "xray", "none", 1.0),
        (8, "D0330", "Pano", 120.0, "xray", "none", 1.0),
        (9, "D1110", "Pro", 110.0, "hyg", "none", 1.0),
        (10, "D1120", "ChildPro", 80.0, "hyg", "none", 1.0),
        (11, "D1206", "Flo", 45.0, "hyg", "none", 1.0),
        (12, "D1351", "Seal", 55.0, "hyg", "tooth", 0.8),
        (13, "D4341", "SRP4+", 265.0, "perio", "quad", 0.8),
        (14, "D4342", "SRP1-3", 185.0, "perio", "quad", 0.8),
        (15, "D4910", "PerMaint", 145.0, "hyg", "none", 0.8),
        (16, "D2140", "Amal1", 145.0, "resto", "surf", 0.8),
        (17, "D2150", "Amal2", 180.0, "resto", "surf", 0.8),
        (18, "D2330", "Resin1A", 165.0, "resto", "surf", 0.8),
        (19, "D2391", "Comp1P", 175.0, "resto", "surf", 0.8),
        (20, "D2392", "Comp2P", 220.0, "resto", "surf", 0.8),
        (21, "D2393", "Comp3P", 265.0, "resto", "surf", 0.8),
        (22, "D2740", "CrnPorc", 1295.0, "crown", "tooth", 0.5),
        (23, "D2750", "CrnPFM", 1195.0, "crown", "tooth", 0.5),
        (24, "D2950", "BU", 295.0, "crown", "tooth", 0.5),
        (25, "D3310", "RCTAnt", 895.0, "endo", "tooth", 0.8),
        (26, "D3330", "RCTMol", 1295.0, "endo", "tooth", 0.8),
        (27, "D7140", "Ext", 195.0, "surg", "tooth", 0.8),
        (28, "D7210", "SurgExt", 325.0, "surg", "tooth", 0.8),
        (29, "D6010", "Implant", 2295.0, "implant", "tooth", 0.5),
        (30, "D6065", "ImpCrn", 1650.0, "implant", "tooth", 0.5),
        (31, "D5110", "DentU", 1895.0, "denture", "none", 0.5),
        (32, "D9110", "Palliative", 95.0, "misc", "none", 0.8),
        (33, "D9230", "N2O", 65.0, "misc", "none", 0.0),
        (34, "D9944", "NightGuard", 495.0, "misc", "none", 0.0),
    )
}
# What an exam can find, with weights: lists of codes scheduled together.
_FINDINGS: Final = (
    (("D2391",), 20),
    (("D2392",), 18),
    (("D2393",), 8),
    (("D2391", "D2392"), 10),
    (("D2330",), 6),
    (("D2140",), 3),
    (("D2150",), 2),
    (("D2740", "D2950"), 10),
    (("D2750",), 3),
    (("D3330", "D2740", "D2950"), 4),
    (("D3310",), 2),
    (("D7140",), 5),
    (("D7210", "D9230"), 2),
    (("D4341", "D4341", "D4341", "D4341"), 4),
    (("D4342", "D4342"), 3),
    (("D6010", "D6065"), 1),
    (("D5110",), 1),
    (("D9944",), 2),
    (("D1351", "D1351"), 2),
    (("D9110", "D0140", "D0220"), 3),
)

# Definition categories (OpenDental's DefCat numbers): items are (name, item value).
_DEFINITIONS: Final[tuple[tuple[int, str, tuple[str, ...]], ...]] = (
    (0, "AccountColors", ("Default", "Baby", "Crown", "Dentures", "Finance Charge")),
    (1, "AdjTypes", ("Discount|-", "Insurance Adjustment|-", "Write-off|-", "Bad Debt|-")),
    (1, "AdjTypes", ("Finance Charge|+", "Billing Charge|+", "Professional Courtesy|-")),
    (1, "AdjTypes", ("Senior Discount|-", "Cash Discount 5%|-", "Returned Check Fee|+")),
    (2, "ApptConfirmed", ("Not Called|NC", "Unconfirmed|UC", "Left Msg|LM", "Texted|TXT")),
    (2, "ApptConfirmed", ("E-mailed|EM", "Confirmed|C", "eConfirm Sent|eSent")),
    (2, "ApptConfirmed", ("eConfirm Callback|eCallback", "eConfirm Failure|eFail")),
    (2, "ApptConfirmed", ("Arrived|A", "In Room|IR", "Checkout|CO", "Complete|Comp")),
    (3, "ApptProcsQuickAdd", ("Comp Ex - FMX - Pro|D0150,D0210,D1110",)),
    (3, "ApptProcsQuickAdd", ("Periodic - Pro - 4BW|D0120,D1110,D0274",)),
    (3, "ApptProcsQuickAdd", ("Child Pro - Flo|D0120,D1120,D1206", "Perio Maint|D0120,D4910")),
    (4, "BillingTypes", ("Standard Account", "No Statements", "Collections|C")),
    (4, "BillingTypes", ("Insurance Only", "E-Statements|E", "Bad Address", "Staff/Family")),
    (8, "MedicalNotes", ("Premed required", "Latex allergy", "Diabetic", "Pacemaker")),
    (10, "PaymentTypes", ("Cash", "Check", "Credit Card", "Debit Card", "Care Credit")),
    (10, "PaymentTypes", ("Patient Portal", "Online Payment", "Refund", "Conversion Credit")),
    (11, "ProcCodeCats", ("Exams & Xrays", "Cleanings", "Fillings", "Crown & Bridge")),
    (11, "ProcCodeCats", ("Endodontics", "Periodontics", "Oral Surgery", "Implants")),
    (11, "ProcCodeCats", ("Dentures", "Orthodontics", "Adjunctive", "Obsolete")),
    (12, "ProgNoteColors", ("TP Text", "TP Background", "Complete Text", "Complete Background")),
    (12, "ProgNoteColors", ("Existing Text", "Existing Background", "Commlog Text", "Rx Text")),
    (13, "RecallUnschedStatus", ("Called - no answer", "Left VM", "Texted", "Will call back")),
    (13, "RecallUnschedStatus", ("Bad phone #", "Moved away", "Scheduled elsewhere")),
    (16, "Diagnosis", ("Caries", "Fractured tooth", "Abscess", "Gingivitis", "Periodontitis")),
    (17, "AppointmentColors", ("Provider", "Opn", "Complete", "Broken", "Unscheduled")),
    (18, "ImageCats", ("BWs|X", "FMX|X", "Panos|X", "Photos|P", "Documents")),
    (18, "ImageCats", ("Insurance Cards|I", "Consent Forms", "Tx Plans|T", "Statements|S")),
    (20, "TxPriorities", ("1", "2", "3", "4", "5", "Watch", "Elective")),
    (21, "MiscColors", ("Perio Bleeding", "Perio Suppuration", "Schedule Holiday")),
    (22, "ChartGraphicColors", ("TP Light", "TP Dark", "Complete Light", "Complete Dark")),
    (22, "ChartGraphicColors", ("Existing Light", "Existing Dark", "Watch Light", "Missing")),
    (23, "ContactCategories", ("Specialists", "Labs", "Pharmacies", "Interpreters – Español")),  # noqa: RUF001
    (25, "BlockoutTypes", ("Lunch", "Staff Meeting", "Emergency", "New Patient", "Crown Seat")),
    (26, "ProcButtonCats", ("Common", "Hygiene", "Restorative", "Surgery", "Perio")),
    (27, "CommLogTypes", ("Appt Related|APPT", "Financial|FIN", "Recall|RECALL")),
    (27, "CommLogTypes", ("Insurance|INS", "Misc", "Text Message|TEXT", "Email")),
    (29, "PaySplitUnearnedType", ("Prepayment", "Treatment Plan Prepayment|X")),
    (30, "Prognosis", ("Good", "Fair", "Poor", "Questionable", "Hopeless")),
    (31, "ClaimCustomTracking", ("Pending X-rays", "Resubmitted", "Appealed")),
    (32, "InsurancePaymentType", ("Check", "EFT", "Virtual Card", "Recoupment")),
    (33, "TaskPriorities", ("Normal", "High", "Urgent")),
    (35, "ProviderSpecialties", ("General", "Hygienist", "Endodontics", "Pediatric")),
    (38, "InsuranceVerificationStatus", ("Verified", "Not Verified", "Pending")),
)
# Offices accumulate hidden leftovers ("zz" sorts them last); these bring the table to
# the size of a real office's (about 600 rows).
_DEFINITION_COUNT: Final = 600

# OpenDental's Permissions enum values (securitylog.PermType).
_P_RX: Final = 9
_P_PAYMENT_CREATE: Final = 15
_P_PAYMENT_EDIT: Final = 16
_P_PROC_COMPL_CREATE: Final = 23
_P_APPT_CREATE: Final = 25
_P_APPT_MOVE: Final = 26
_P_APPT_EDIT: Final = 27
_P_DEPOSIT: Final = 30
_P_INS_PAY_CREATE: Final = 36
_P_TREAT_PLAN_EDIT: Final = 38
_P_REPORT_PROD_INC: Final = 39
_P_SHEET_EDIT: Final = 42
_P_COMMLOG_EDIT: Final = 43
_P_PERIO_EDIT: Final = 45
_P_MEDICAL_INFO_VIEWED: Final = 70
_P_USER_LOG_ON_OFF: Final = 83
_P_TASK_EDIT: Final = 84
_P_EMAIL_SEND: Final = 85
_P_IMAGE_EDIT: Final = 89
_P_PROC_EDIT: Final = 100
_P_CLAIM_SEND: Final = 104
_P_PATIENT_CREATE: Final = 106
_P_PATIENT_EDIT: Final = 108
_P_CLAIM_DELETE: Final = 118
_P_APPT_CONFIRM: Final = 120
_P_CLAIM_EDIT: Final = 150
_P_TREAT_PLAN_SIGN: Final = 162
_P_AGING_RAN: Final = 171
_P_PORTAL_LOGIN: Final = 175

# Users (UserNum, name): front desk 2-4, doctors 5-7 (ProvNum + 4), hygienists 8-10
# (ProvNum + 4), billing 11. UserNum 0 is OpenDental's own services.
_USERS: Final = (
    *((1, "odadmin"), (2, "jsmith"), (3, "mgarcia"), (4, "tnguyen"), (5, "drpeterson")),
    *((6, "drkhan"), (7, "drlefevre"), (8, "rdh.amy"), (9, "rdh.søren"), (10, "rdh.linh")),
    *((11, "billing"), (12, "assistant1")),
)
_FRONT: Final = (2, 3, 4)
_DENTISTS: Final = (1, 2, 3)
_HYGIENISTS: Final = (4, 5, 6)
_THIRD_DENTIST_DAY: Final = _day(date(2022, 3, 1))  # an associate joined the practice
_SERVER: Final = "ODSERVER"
_FRONT_PCS: Final = ("FRONT1", "FRONT2")
_OP_PCS: Final = ("OP1", "OP2", "OP3", "OP4", "OP5", "OP6", "OP7", "OP8")
_WORKSTATIONS: Final = ("FRONT1", "FRONT2", "BILLING-PC", "DR-OFFICE", *_OP_PCS)

_CHECKOUT_TYPES: Final = (
    "Credit Card",
    "Cash",
    "Check",
    "Debit Card",
    "Care Credit",
    "Online Payment",
)
_CHECKOUT_WEIGHTS: Final = (45, 10, 15, 15, 5, 10)
_DEPOSITED: Final = frozenset(("Cash", "Check", "Credit Card", "Debit Card", "Care Credit"))
_FINDINGS_WEIGHT: Final = sum(weight for _, weight in _FINDINGS)
_CHART_ENTRIES: Final = (
    "Procedure note edited.",
    "Progress note signed by provider.",
    "Tooth chart condition added.",
    "Treatment plan viewed.",
    "Clinical note: pt tolerated procedure well.\r\nNo complications.",
)
_SHEET_XML: Final = (
    '<sheet type="MedicalHistory"><field name="allergies">penicillin</field>'
    '<field name="meds">lisinopril &amp; "baby aspirin"</field></sheet>'
)
# Audit entries per patient and weekday that are not tied to a visit (portal logins,
# recall texts, e-mails, tasks); tuned so that securitylog holds about three quarters of
# all rows, as at a real office.
_NOISE_PER_PATIENT_DAY: Final = 0.016

# (ProcNum, amount, ProvNum, ProcDate, FSplitNum, UnearnedType) of one paysplit.
_Split = tuple[int, float, int, str, int, int]
# (time, sequence, PermType, UserNum, PatNum, LogText, CompName, FKey, LogSource,
# DefNum, DateTPrevious) of one securitylog row.
_LogEntry = tuple[int, int, int, int, int, str, str, int, int, int, str]

# Appointment and procedure statuses (OpenDental's ApptStatus and ProcStat).
_SCHEDULED, _COMPLETE, _UNSCHED_LIST, _BROKEN = 1, 2, 3, 5
_TP, _C, _EO, _D = 1, 2, 4, 6
_NEWPAT, _RECALL, _RESTO = 0, 1, 2


def _esc(text: str) -> str:
    return text.translate(_ESCAPES)


def _dt(t: int) -> str:
    day, rest = divmod(t, _DAY)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{_DAY_TEXT[day]} {hours:02d}:{minutes:02d}:{seconds:02d}"


def _unset_dt(day: int) -> str:
    return _ZERO_DT if day < _UPGRADE_DAY else _MIN_DT


def _argb(red: int, green: int, blue: int) -> int:
    return ((0xFF << 24) | (red << 16) | (green << 8) | blue) - (1 << 32)


def _row_hash(*parts: object) -> str:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return base64.b64encode(digest).decode()


def _open_day(day: int) -> int:
    weekday = day % 7
    return day + (2 if weekday == 5 else 1 if weekday == 6 else 0)


def _money(value: float) -> str:
    return repr(value)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A slice of the clinic: tab-separated lines per table and ids to delete afterwards.

    ``lines`` maps every demo table name to its lines (possibly none), each one row in
    the table's column order, without the line terminator. ``deleted`` maps table names
    to primary keys written in this or an earlier chunk that must be deleted after all
    chunks are loaded.
    """

    lines: Mapping[str, list[str]]
    deleted: Mapping[str, list[int]]


@dataclass(slots=True, eq=False)
class _Patient:
    num: int
    guarantor: int = 0
    lname: str = ""
    fname: str = ""
    middle: str = ""
    preferred: str = ""
    gender: int = 0
    position: int = 0
    birth: str = _MIN_DATE
    ssn: str = ""
    address: str = ""
    address2: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""
    hm: str = ""
    wk: str = ""
    cell: str = ""
    email: str = ""
    prov: int = 1
    hyg: int = 0
    fee_sched: int = 0
    billing: int = 0
    addr_note: str | None = None
    famfin: str | None = None
    sched_before: str | None = None
    first_visit: str = _MIN_DATE
    sec_entry: str = _MIN_DATE
    stamp: int = 0
    child: bool = False
    relat: int = 0
    plan: int = 0
    inssub: int = 0
    coverage: float = 0.0
    ppo: bool = False
    charges: float = 0.0
    paid: float = 0.0
    ins_paid: float = 0.0
    writeoff: float = 0.0
    ins_pending: float = 0.0
    ded_year: int = 0
    last_charge: int = 0
    last_proc: _Proc | None = None
    visits: int = 0


@dataclass(slots=True, eq=False)
class _Proc:
    num: int
    pat: _Patient
    code: _Code
    fee: float
    entry: int
    user: int
    prov: int
    date: str
    stamp: int = 0
    apt: int = 0
    surf: str = ""
    tooth: str = ""
    priority: int = 0
    status: int = _TP
    date_complete: str = _MIN_DATE
    time: str = "00:00:00"
    locked: int = 0
    discount: float = 0.0
    urgency: int = 0


@dataclass(slots=True, eq=False)
class _Appointment:
    num: int
    pat: _Patient
    kind: int
    at: int
    entry: int
    stamp: int
    user: int
    confirmed: int
    prov: int
    hyg: int
    op: int
    note: str | None
    procs: list[_Proc]
    pattern: str = ""
    status: int = _SCHEDULED
    plan: int = 0
    unsched: int = 0
    arrived: str = ""
    seated: str = ""
    dismissed: str = ""
    asked: str = _MIN_DT
    color: int = 0
    priority: int = 0
    visit: int = 0
    prepaid: tuple[int, float] | None = None


class _Clinic:
    """The simulation; :meth:`run` yields chunks. Single use."""

    def __init__(self, patients: int, seed: int, chunk_rows: int) -> None:
        self.rng = random.Random(seed)
        self.patients_target = patients
        self.converted_target = patients * 3 // 10
        self.chunk_rows = chunk_rows
        self.lines: dict[str, list[str]] = {name: [] for name in DEMO_TABLES}
        self.deleted: dict[str, list[int]] = {name: [] for name in DEMO_TABLES}
        self.buffered = 0
        self.next_id = dict.fromkeys(DEMO_TABLES, 1)
        self.patients: list[_Patient] = []
        self.pending: dict[int, _Appointment] = {}
        self.events: list[tuple[int, int, int, object]] = []
        self.seq = 0
        self.day_end = _GO_LIVE * _DAY
        self.log_today: list[_LogEntry] = []
        self.log_later: list[_LogEntry] = []
        self.defs: dict[str, dict[str, int]] = {}
        self.deposits: dict[int, float] = {}
        self.inssubs = 0

    # -- helpers ---------------------------------------------------------------------------

    def _id(self, table: str) -> int:
        value = self.next_id[table]
        self.next_id[table] = value + 1
        return value

    def _emit(self, table: str, fields: list[str]) -> None:
        self.lines[table].append("\t".join(fields))
        self.buffered += 1

    def _push(self, t: int, kind: int, obj: object) -> int:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, obj))
        return self.seq

    def _log(
        self,
        t: int,
        perm: int,
        user: int,
        text: str,
        pat: int = 0,
        fkey: int = 0,
        comp: str = "FRONT1",
        source: int = 0,
        defnum: int = 0,
        previous: str = _MIN_DT,
    ) -> None:
        self.seq += 1
        entry = (t, self.seq, perm, user, pat, text, comp, fkey, source, defnum, previous)
        if t < self.day_end:
            self.log_today.append(entry)
        else:
            # Logged by an action that completes on a later day: kept until that day so
            # that SecurityLogNum grows with LogDateTime, as in a real audit log.
            heapq.heappush(self.log_later, entry)

    def _fee(self, code: _Code, t: int) -> float:
        years = max(0, (t // _DAY - _GO_LIVE) // 365)
        fee = code[3] * (1.035**years)
        if t >= _FEE_UPDATE_T:
            fee *= 1.04
        return round(fee, 2)

    def _slot(self, day: int) -> int:
        return _open_day(day) * _DAY + 8 * 3600 + self.rng.randrange(51) * 600

    def _def(self, category: str, name: str) -> int:
        return self.defs[category][name]

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> Iterator[Chunk]:
        self._definitions()
        arrivals = self._arrivals()
        self._conversion()
        next_arrival = 0
        handlers = (self._visit, self._confirm_sent, self._confirm_reply, self._era, self._stmt)
        for day in range(_GO_LIVE, _day(NOW)):
            end = (day + 1) * _DAY
            self.day_end = end
            while self.log_later and self.log_later[0][0] < end:
                self.log_today.append(heapq.heappop(self.log_later))
            while next_arrival < len(arrivals) and arrivals[next_arrival] < end:
                self._push(arrivals[next_arrival], -1, None)
                next_arrival += 1
            # Straight from the queue: what an event schedules for later today runs today.
            while self.events and self.events[0][0] < end:
                t, _, kind, obj = heapq.heappop(self.events)
                if kind < 0:
                    self._new_patient(t)
                else:
                    handlers[kind](t, obj)
            self._daily_noise(day)
            self._flush_log(day)
            if self.buffered >= self.chunk_rows:
                yield self._chunk()
        self._finish()
        yield self._chunk()

    def _chunk(self) -> Chunk:
        chunk = Chunk(lines=self.lines, deleted=self.deleted)
        self.lines = {name: [] for name in DEMO_TABLES}
        self.deleted = {name: [] for name in DEMO_TABLES}
        self.buffered = 0
        return chunk

    # -- configuration and conversion ------------------------------------------------------

    def _definitions(self) -> None:
        rng = self.rng
        order: dict[int, int] = {}
        for category, key, items in _DEFINITIONS:
            for item in items:
                name, _, value = item.partition("|")
                num = self._id("definition")
                self.defs.setdefault(key, {})[name] = num
                item_order = order.get(category, 0)
                order[category] = item_order + 1
                color = _argb(rng.randrange(256), rng.randrange(256), rng.randrange(256))
                colored = category in (0, 12, 17, 20, 21, 22)
                fields = [str(num), str(category), str(item_order), _esc(name), _esc(value)]
                self._emit("definition", [*fields, str(color if colored else 0), "0"])
        categories = sorted({category for category, _, _ in _DEFINITIONS})
        while self.next_id["definition"] <= _DEFINITION_COUNT:
            num = self._id("definition")
            category = categories[rng.randrange(len(categories))]
            item_order = order.get(category, 0)
            order[category] = item_order + 1
            name = f"zz old {category}-{item_order}"
            black = str(_argb(0, 0, 0))
            self._emit(
                "definition", [str(num), str(category), str(item_order), name, "", black, "1"]
            )

    def _arrivals(self) -> list[int]:
        rng = self.rng
        arrivals = []
        for _ in range(self.patients_target - self.converted_target):
            day = _open_day(rng.randrange(_GO_LIVE, _day(NOW) - 3))
            arrivals.append(day * _DAY + 8 * 3600 + rng.randrange(9 * 3600))
        arrivals.sort()
        return arrivals

    def _conversion(self) -> None:
        """Patients, history and booked appointments imported from the previous system."""
        rng = self.rng
        for index in range(self.converted_target):
            # The conversion inserted about 400 rows a second: runs of equal stamps.
            t = _CONVERSION_T + index // 400
            pat = self._make_patient(t, converted=True)
            pat.first_visit = self._history_date()
            for _ in range(rng.randrange(3)):
                code = _CODES[rng.choice(("D0120", "D1110", "D0274", "D2391", "D2740"))]
                proc = self._proc(pat, code, t, user=1)
                proc.status = _C if rng.random() < 0.6 else _EO
                proc.date = self._history_date()
                proc.urgency = -1  # the conversion left OpenDental's enum blank
                self._emit_proc(proc, entry=_MIN_DT, entry_c=_DAY_TEXT[_GO_LIVE])
            if rng.random() < 0.8:
                at = self._slot(_GO_LIVE + rng.randrange(180))
                self._book(pat, t, at, _RECALL, user=1, converted=True)
            # Credit balances carried over from the old system (always at least one).
            if index == 0 or rng.random() < 0.03:
                self._credit_balance(pat, t)

    def _history_date(self) -> str:
        return (date(2004, 1, 1) + timedelta(days=self.rng.randrange(15 * 365))).isoformat()

    def _credit_balance(self, pat: _Patient, t: int) -> None:
        cents = self.rng.randrange(500, 60_000)
        unearned = self._def("PaySplitUnearnedType", "Prepayment")
        self._payment(
            pat,
            t,
            cents / 100,
            "Conversion Credit",
            [(0, cents / 100, pat.prov, _ZERO_DATE, 0, unearned)],
            user=1,
            note="Credit balance from previous software",
            legacy=f"{cents // 100}.{cents % 100:02d}",
        )

    # -- patients --------------------------------------------------------------------------

    def _make_patient(self, t: int, *, converted: bool = False) -> _Patient:
        rng = self.rng
        pat = _Patient(self._id("patient"))
        day = t // _DAY
        previous = self.patients[-1] if self.patients else None
        self.patients.append(pat)
        if previous is not None and rng.random() < 0.35:
            head = self.patients[previous.guarantor - 1]
            pat.guarantor = head.num
            pat.lname = head.lname if rng.random() < 0.85 else rng.choice(_LAST_NAMES)
            pat.address, pat.address2 = head.address, head.address2
            pat.city, pat.state, pat.zip, pat.hm = head.city, head.state, head.zip, head.hm
            pat.plan, pat.inssub = head.plan, head.inssub
            pat.coverage, pat.ppo = head.coverage, head.ppo
            pat.child = rng.random() < 0.6
            pat.relat = 2 if pat.child else 1
            pat.billing = head.billing
        else:
            pat.guarantor = pat.num
            pat.lname = rng.choice(_LAST_NAMES)
            city, state, zip3 = rng.choice(_CITIES)
            pat.address = f"{rng.randrange(100, 19999)} {rng.choice(_STREETS)}"
            pat.address2 = rng.choice(_UNITS) if rng.random() < 0.15 else ""
            pat.city, pat.state = city, state
            pat.zip = f"{zip3}{rng.randrange(100):02d}"
            if rng.random() < 0.1:
                pat.zip += f"-{rng.randrange(10000):04d}"
            pat.hm = self._phone() if rng.random() < 0.45 else ""
            if rng.random() < 0.65:
                self.inssubs += 1
                pat.plan = 1 + rng.randrange(40)
                pat.inssub = self.inssubs
                pat.coverage = 1.0 if rng.random() < 0.9 else 0.5
                pat.ppo = rng.random() < 0.6
            billing = "Standard Account" if rng.random() < 0.9 else "E-Statements"
            pat.billing = self._def("BillingTypes", billing)
        pat.gender = 2 if rng.random() < 0.01 else rng.randrange(2)
        pat.fname = rng.choice(_FIRST_NAMES[pat.gender % 2])
        pat.middle = chr(65 + rng.randrange(26)) if rng.random() < 0.4 else ""
        pat.preferred = rng.choice(_NICKNAMES) if rng.random() < 0.08 else ""
        pat.position = 2 if pat.child else (1 if rng.random() < 0.55 else rng.choice((0, 3, 4)))
        if rng.random() < 0.03:
            pat.birth = _MIN_DATE
        else:
            years = (2, 17) if pat.child else (18, 90)
            age = rng.randrange(365 * years[0], 365 * years[1])
            pat.birth = (_BASE + timedelta(days=day - age)).isoformat()
        pat.ssn = f"9{rng.randrange(10**8):08d}" if rng.random() < 0.6 else ""
        pat.wk = self._phone() if rng.random() < 0.15 else ""
        pat.cell = self._phone() if rng.random() < 0.9 else ""
        if rng.random() < 0.75:
            local = "".join(
                ch for ch in f"{pat.fname}.{pat.lname}".lower() if ch.isalnum() or ch == "."
            )
            if not local.isascii():
                local = f"patient{pat.num}"
            pat.email = f"{local}@example.{rng.choice(('com', 'org', 'net'))}"
        pat.prov = _DENTISTS[rng.randrange(2 if day < _THIRD_DENTIST_DAY else 3)]
        pat.hyg = rng.choice(_HYGIENISTS) if rng.random() < 0.7 else 0
        pat.fee_sched = 2 + rng.randrange(4) if pat.ppo else 0
        pat.addr_note = self._maybe_note(_PATIENT_NOTES, 0.05)
        pat.famfin = self._maybe_note(_PATIENT_NOTES, 0.04)
        if rng.random() < 0.06:
            pat.sched_before = rng.choice(("10:00:00", "12:00:00", "15:30:00"))
        pat.stamp = t
        pat.sec_entry = _MIN_DATE if converted else _DAY_TEXT[day]
        return pat

    def _maybe_note(self, pool: tuple[str, ...], chance: float) -> str | None:
        roll = self.rng.random()
        if roll < chance:
            return self.rng.choice(pool)
        return "" if roll < 0.3 else None

    def _phone(self) -> str:
        rng = self.rng
        return f"({rng.choice(_AREA_CODES)}){rng.randrange(200, 999)}-{rng.randrange(10000):04d}"

    def _new_patient(self, t: int) -> None:
        rng = self.rng
        pat = self._make_patient(t)
        user = rng.choice(_FRONT)
        comp = rng.choice(_FRONT_PCS)
        self._log(t, _P_PATIENT_CREATE, user, "Created from Add Family window.", pat.num, 0, comp)
        self._log(t + 40, _P_PATIENT_EDIT, user, self._edit_text(pat), pat.num, 0, comp)
        if rng.random() < 0.92:
            at = self._slot(t // _DAY + rng.randrange(2, 22))
            self._book(pat, t + rng.randrange(60, 600), at, _NEWPAT, user=user)

    def _edit_text(self, pat: _Patient) -> str:
        return (
            f"{pat.lname}, {pat.fname} - PatNum {pat.num}\r\n"
            f"Address changed from '' to '{pat.address}'\r\nEmail set to {pat.email or '(none)'}"
        )

    # -- appointments and procedures -------------------------------------------------------

    def _proc(self, pat: _Patient, code: _Code, t: int, user: int) -> _Proc:
        rng = self.rng
        proc = _Proc(
            num=self._id("procedurelog"),
            pat=pat,
            code=code,
            fee=self._fee(code, t),
            entry=t,
            user=user,
            prov=pat.prov,
            date=_DAY_TEXT[t // _DAY],
            stamp=t,
        )
        area = code[5]
        if area in ("tooth", "surf"):
            proc.tooth = str(rng.randrange(1, 33))
            if area == "surf":
                proc.surf = rng.choice(("O", "MO", "DO", "MOD", "B", "L", "F", "MODL", "OL"))
        elif area == "quad":
            proc.surf = rng.choice(("UR", "UL", "LR", "LL"))
        if rng.random() < 0.15:
            proc.priority = self._def("TxPriorities", rng.choice(("1", "2", "3", "Watch")))
        return proc

    def _book(
        self,
        pat: _Patient,
        t: int,
        at: int,
        kind: int,
        *,
        user: int,
        procs: list[_Proc] | None = None,
        converted: bool = False,
    ) -> _Appointment:
        rng = self.rng
        roll = rng.random()
        if roll < 0.12:
            note: str | None = rng.choice(_APPOINTMENT_NOTES)
        elif roll < 0.3 and t // _DAY < _UPGRADE_DAY:
            note = None
        else:
            note = ""
        resto = kind == _RESTO
        apt = _Appointment(
            num=self._id("appointment"),
            pat=pat,
            kind=kind,
            at=at,
            entry=-1 if converted else t,
            stamp=t,
            user=user,
            confirmed=self._def("ApptConfirmed", "Unconfirmed"),
            prov=pat.prov,
            hyg=0 if resto else pat.hyg or rng.choice(_HYGIENISTS),
            op=1 + rng.randrange(4) if resto else 5 + rng.randrange(4),
            note=note,
            procs=[],
        )
        apt.priority = 1 if rng.random() < 0.03 else 0
        apt.color = _argb(0, 255, 0) if rng.random() < 0.02 else 0
        if kind == _NEWPAT and not converted and rng.random() < 0.5:
            apt.asked = _dt(at - 900)
        if procs is None:
            codes = self._hygiene_codes(pat, kind, at)
            procs = [self._proc(pat, _CODES[code], t, user) for code in codes]
        for proc in procs:
            proc.apt = apt.num
        apt.procs = procs
        minutes = 90 if kind == _NEWPAT else 60 if kind == _RECALL else 30 + 20 * len(procs)
        apt.pattern = "//" + "X" * (min(minutes // 5, 36) - 4) + "//"
        self.pending[apt.num] = apt
        if not converted:
            comp = rng.choice(_FRONT_PCS)
            text = f"New appointment for: {_dt(at)}, {self._descript(apt)}"
            self._log(t, _P_APPT_CREATE, user, text, pat.num, apt.num, comp)
            if rng.random() < _MISTAKE_RATE:
                self._mistaken_appointment(apt, t, user, comp)
        self._schedule(apt)
        return apt

    def _hygiene_codes(self, pat: _Patient, kind: int, at: int) -> tuple[str, ...]:
        rng = self.rng
        if kind == _NEWPAT:
            cleaning = "D1120" if pat.child else ("D4341" if rng.random() < 0.08 else "D1110")
            xrays = "D0210" if rng.random() < 0.6 else "D0330"
            codes: tuple[str, ...] = ("D0150", xrays, cleaning)
        else:
            cleaning = "D1120" if pat.child else ("D4910" if rng.random() < 0.15 else "D1110")
            codes = ("D0120", cleaning)
            if rng.random() < 0.35:
                codes = (*codes, "D0274" if (at // _DAY) % 2 else "D0272")
        return (*codes, "D1206") if pat.child else codes

    def _descript(self, apt: _Appointment) -> str:
        return ", ".join(proc.code[2] for proc in apt.procs)

    def _schedule(self, apt: _Appointment) -> None:
        if apt.at < _NOW_T:
            apt.visit = self._push(apt.at, 0, apt)
        # eConfirmations go out two days ahead, in one batch statement per day.
        batch_day = apt.at // _DAY - 2
        batch = batch_day * _DAY + 6 * 3600 + 3 + batch_day % 5
        if apt.entry < batch < _NOW_T and batch_day >= _GO_LIVE:
            self._push(batch, 1, apt)

    def _mistaken_appointment(self, apt: _Appointment, t: int, user: int, comp: str) -> None:
        rng = self.rng
        created = t + rng.randrange(5, 60)
        copy = replace(apt, num=self._id("appointment"), procs=[], entry=created, stamp=created)
        text = f"New appointment for: {_dt(apt.at)}"
        self._log(created, _P_APPT_CREATE, user, text, apt.pat.num, copy.num, comp)
        deleted = created + rng.randrange(30, 900)
        text = "Appointment deleted (duplicate)."
        self._log(deleted, _P_APPT_EDIT, user, text, apt.pat.num, copy.num, comp)
        self._emit_appointment(copy)
        self.deleted["appointment"].append(copy.num)

    def _confirm_sent(self, t: int, obj: object) -> None:
        assert isinstance(obj, _Appointment)
        apt = obj
        if apt.num not in self.pending or t >= apt.at:
            return
        previous = _dt(apt.stamp)
        apt.confirmed = self._def("ApptConfirmed", "eConfirm Sent")
        apt.stamp = t  # one batch statement: every appointment of the day, same second
        text = "Confirmation status set to eConfirm Sent"
        self._log(
            t, _P_APPT_CONFIRM, 0, text, apt.pat.num, apt.num, _SERVER, 3, apt.confirmed, previous
        )
        if self.rng.random() < 0.65:
            self._push(t + self.rng.randrange(600, 40_000), 2, apt)

    def _confirm_reply(self, t: int, obj: object) -> None:
        assert isinstance(obj, _Appointment)
        apt = obj
        if apt.num not in self.pending or t >= apt.at:
            return
        previous = _dt(apt.stamp)
        apt.confirmed = self._def("ApptConfirmed", "Confirmed")
        apt.stamp = t
        text = "Patient replied C to the eConfirmation text"
        self._log(
            t, _P_APPT_CONFIRM, 0, text, apt.pat.num, apt.num, _SERVER, 3, apt.confirmed, previous
        )

    def _visit(self, t: int, obj: object) -> None:
        assert isinstance(obj, _Appointment)
        if obj.num not in self.pending:
            return
        if self.rng.random() < 0.08:
            self._break(obj, t)
        else:
            self._complete(obj, t)

    def _break(self, apt: _Appointment, t: int) -> None:
        rng = self.rng
        user = rng.choice(_FRONT)
        stamp = t + rng.randrange(900, 7200)
        previous = _dt(apt.stamp)
        pat = apt.pat.num
        apt.stamp = stamp
        if rng.random() < 0.55:
            old = apt.at
            apt.at = self._slot(t // _DAY + rng.randrange(7, 36))
            apt.confirmed = self._def("ApptConfirmed", "Unconfirmed")
            text = f"{apt.pat.lname}, {apt.pat.fname} moved from {_dt(old)} to {_dt(apt.at)}"
            self._log(stamp, _P_APPT_MOVE, user, text, pat, apt.num, "FRONT1", 0, 0, previous)
            self._schedule(apt)
            return
        if rng.random() < 0.5:
            apt.status = _BROKEN
            text = "Appointment broken (no show)."
        else:
            apt.status = _UNSCHED_LIST
            status = rng.choice(("Called - no answer", "Left VM", "Will call back"))
            apt.unsched = self._def("RecallUnschedStatus", status)
            text = "Appointment sent to the unscheduled list."
        self._log(stamp, _P_APPT_EDIT, user, text, pat, apt.num, "FRONT2", 0, 0, previous)
        self._finalize(apt)

    def _finalize(self, apt: _Appointment) -> None:
        """Write an appointment that will not change again, with its planned procedures."""
        del self.pending[apt.num]
        self._emit_appointment(apt)
        for proc in apt.procs:
            self._global_fee_update(proc)
            self._emit_proc(proc)

    def _global_fee_update(self, proc: _Proc) -> None:
        # One "Global Update Fees" run re-priced every planned procedure at once.
        if proc.status == _TP and proc.entry < _FEE_UPDATE_T < _NOW_T:
            proc.fee = self._fee(proc.code, _FEE_UPDATE_T)
            proc.stamp = _FEE_UPDATE_T

    def _complete(self, apt: _Appointment, t: int) -> None:
        rng = self.rng
        pat = apt.pat
        day = t // _DAY
        arrived = t - rng.randrange(0, 900)
        seated = t + rng.randrange(0, 600)
        dismissed = seated + len(apt.pattern) * 300 + rng.randrange(-300, 600)
        done = dismissed + rng.randrange(30, 400)
        if rng.random() < 0.3:
            apt.arrived = apt.seated = apt.dismissed = _unset_dt(day)
        else:
            apt.arrived, apt.seated, apt.dismissed = _dt(arrived), _dt(seated), _dt(dismissed)
        previous = _dt(apt.stamp)
        apt.status = _COMPLETE
        apt.stamp = done  # "Set Complete" saves the appointment and its procedures together
        apt.plan = pat.plan
        finished = "Complete" if rng.random() < 0.5 else "Arrived"
        apt.confirmed = self._def("ApptConfirmed", finished)
        doctor = 4 + pat.prov
        comp = _OP_PCS[apt.op - 1]
        if pat.visits == 0 or rng.random() < 0.1:
            pat.stamp = arrived
            text = self._edit_text(pat)
            self._log(arrived, _P_PATIENT_EDIT, rng.choice(_FRONT), text, pat.num, 0, "FRONT1")
        if pat.first_visit == _MIN_DATE:
            pat.first_visit = _DAY_TEXT[day]
        pat.visits += 1
        text = "Medical history viewed."
        self._log(seated + 30, _P_MEDICAL_INFO_VIEWED, doctor, text, pat.num, 0, comp)
        self._chatter(apt, seated, dismissed, comp)
        clock = f"{(t % _DAY) // 3600:02d}:{(t % 3600) // 60:02d}:00"
        sixty_five = (_BASE + timedelta(days=day - 65 * 365)).isoformat()
        senior = _MIN_DATE < pat.birth < sixty_five
        total = 0.0
        for proc in apt.procs:
            if proc.entry < _FEE_UPDATE_T <= done:
                proc.fee = self._fee(proc.code, done)
            proc.status = _C
            proc.date = proc.date_complete = _DAY_TEXT[day]
            proc.stamp = done
            if apt.hyg and proc.code[4] in ("hyg", "exam", "xray"):
                proc.prov = apt.hyg
            proc.time = clock if rng.random() < 0.5 else "00:00:00"
            proc.locked = 1 if rng.random() < 0.4 else 0
            if senior:
                proc.discount = proc.fee * 0.05  # not rounded: OpenDental keeps doubles
            total += proc.fee
            text = f"{proc.code[1]} ({proc.code[2]}), Fee: ${proc.fee:.2f}"
            self._log(done, _P_PROC_COMPL_CREATE, doctor, text, pat.num, proc.num, comp)
            pat.last_proc = proc
        pat.charges += total
        pat.last_charge = day
        text = "Appointment set complete."
        self._log(done, _P_APPT_EDIT, doctor, text, pat.num, apt.num, comp, 0, 0, previous)
        del self.pending[apt.num]
        self._emit_appointment(apt)
        for proc in apt.procs:
            self._emit_proc(proc)
        due = total
        # Not every insured visit is billed: plans lapse, frequencies are used up.
        if pat.plan and apt.procs and rng.random() < 0.55:
            estimate, allowed = self._claim(pat, apt, done)
            if estimate:
                due = allowed - estimate
        if apt.prepaid is not None:
            due -= self._transfer(pat, apt, done + 90)
        self._checkout(pat, apt, dismissed + rng.randrange(60, 600), due)
        if apt.kind != _RESTO:
            self._next_visits(apt, done)

    def _chatter(self, apt: _Appointment, seated: int, dismissed: int, comp: str) -> None:
        """The audit entries a visit leaves besides its own: images, charts, forms, notes."""
        rng = self.rng
        pat = apt.pat.num
        doctor = 4 + apt.pat.prov
        assistant = 4 + (apt.hyg or 4)
        for proc in apt.procs:
            if proc.code[4] == "xray":
                for image in range(rng.randrange(1, 4)):
                    t = seated + 120 + image * 20
                    name = f"{proc.code[2]}_{_DAY_TEXT[t // _DAY]}_{image + 1}.jpg"
                    text = f"Document Created: {name} in category X-Rays\\{proc.code[2]}"
                    self._log(t, _P_IMAGE_EDIT, assistant, text, pat, 0, comp)
        if apt.kind != _RESTO:
            for entry in range(rng.randrange(2, 6)):
                text = f"Perio chart edited: tooth {rng.randrange(1, 33)}"
                self._log(seated + 600 + entry * 45, _P_PERIO_EDIT, assistant, text, pat, 0, comp)
        for entry in range(rng.randrange(2, 7)):
            t = seated + rng.randrange(60, max(120, dismissed - seated))
            text = rng.choice(_CHART_ENTRIES)
            self._log(t, _P_PROC_EDIT, doctor if entry % 2 else assistant, text, pat, 0, comp)
        if rng.random() < 0.35:
            text = f"Sheet imported from eClipboard: {_SHEET_XML}"
            self._log(seated - 300, _P_SHEET_EDIT, 0, text, pat, 0, "eClipboard", 5)
        if rng.random() < 0.15:
            signature = base64.b64encode(rng.randbytes(rng.randrange(48, 160))).decode()
            text = f"Treatment plan signed. Signature: {signature}"
            self._log(dismissed - 120, _P_TREAT_PLAN_SIGN, doctor, text, pat, 0, comp)
        if rng.random() < 0.05:
            text = "Rx created: Amoxicillin 500mg #21"
            self._log(dismissed - 60, _P_RX, doctor, text, pat, 0, comp)

    def _next_visits(self, apt: _Appointment, t: int) -> None:
        rng = self.rng
        pat = apt.pat
        user = rng.choice(_FRONT)
        day = t // _DAY
        doctor = 4 + apt.prov
        if rng.random() < (0.45 if apt.kind == _NEWPAT else 0.25):
            codes = self._finding()
            procs = [self._proc(pat, _CODES[code], t, doctor) for code in codes]
            text = "Treatment planned: " + ", ".join(codes)
            self._log(t + 30, _P_TREAT_PLAN_EDIT, doctor, text, pat.num)
            if rng.random() < 0.75:
                at = self._slot(day + rng.randrange(7, 36))
                booked = self._book(pat, t + 120, at, _RESTO, user=user, procs=procs)
                fee = sum(proc.fee for proc in procs)
                if fee > 2000 and rng.random() < 0.5:
                    self._prepayment(pat, booked, t + 300, fee)
            else:
                for proc in procs:
                    gone = _open_day(day + rng.randrange(1, 200))
                    if rng.random() < 0.1 and gone < _day(NOW) - 1:
                        proc.status = _D  # patients and procedures are only soft-deleted
                        proc.stamp = gone * _DAY + 9 * 3600 + rng.randrange(8 * 3600)
                        text = "Procedure deleted."
                        self._log(proc.stamp, _P_PROC_EDIT, doctor, text, pat.num, proc.num)
                    self._global_fee_update(proc)
                    self._emit_proc(proc)
        if rng.random() < 0.7:
            at = self._slot(day + 182 + rng.randrange(-21, 22))
            self._book(pat, t + 60, at, _RECALL, user=user)

    def _finding(self) -> tuple[str, ...]:
        roll = self.rng.randrange(_FINDINGS_WEIGHT)
        for codes, weight in _FINDINGS:
            if roll < weight:
                return codes
            roll -= weight
        return _FINDINGS[-1][0]

    # -- money -----------------------------------------------------------------------------

    def _claim(self, pat: _Patient, apt: _Appointment, t: int) -> tuple[float, float]:
        """Write the visit's claim; returns (insurance estimate, allowed amount)."""
        rng = self.rng
        day = t // _DAY
        fee = sum(proc.fee for proc in apt.procs)
        allowed = estimate = 0.0
        for proc in apt.procs:
            share = round(proc.fee * 0.78, 2) if pat.ppo else proc.fee
            allowed += share
            estimate += share * proc.code[6] * pat.coverage
        year = (_BASE + timedelta(days=day)).year
        deductible = 50.0 if pat.ded_year != year and estimate > 50 else 0.0
        estimate = round(estimate - deductible, 2)
        if estimate <= 0:
            return 0.0, fee
        if deductible:
            pat.ded_year = year
        num = self._id("claim")
        send_day = day if t % _DAY < 16 * 3600 else _open_day(day + 1)
        sent = send_day * _DAY + 17 * 3600 + 5 * 60 + send_day % 50  # the daily batch
        received_day = _open_day(send_day + rng.randrange(7, 46))
        received = received_day * _DAY + 10 * 3600 + 15 * 60 + received_day % 40  # ERA batch
        paid = writeoff = 0.0
        reason = ""
        if rng.random() < 0.03:
            status, stamp, date_sent, date_received = "H", t, _MIN_DATE, _MIN_DATE
        elif received >= _NOW_T:
            status = "S" if sent < _NOW_T else "W"
            stamp = sent if sent < _NOW_T else t
            date_sent = _DAY_TEXT[send_day] if sent < _NOW_T else _MIN_DATE
            date_received = _MIN_DATE
        else:
            status, stamp = "R", received
            date_sent, date_received = _DAY_TEXT[send_day], _DAY_TEXT[received_day]
            roll = rng.random()
            if roll < 0.05:
                reason = rng.choice(_REASONS_UNDERPAID)
            elif roll < 0.17:
                paid = round(estimate * rng.uniform(0.6, 0.95), 2)
                reason = rng.choice(_REASONS_UNDERPAID)
            else:
                paid = estimate
            writeoff = round(fee - allowed, 2)
            self._push(received, 3, (pat, num, paid, estimate, writeoff, fee))
        if status != "R":
            pat.ins_pending += estimate
        user = 11 if rng.random() < 0.7 else rng.choice(_FRONT)
        crown = any(proc.code[4] == "crown" for proc in apt.procs)
        tracking = self._def("ClaimCustomTracking", "Resubmitted") if rng.random() < 0.02 else 0
        fields = [
            str(num),
            str(pat.num),
            _DAY_TEXT[day],
            date_sent,
            status,
            date_received,
            str(pat.plan),
            str(apt.prov),
            _money(fee),
            _money(estimate),
            _money(paid),
            _money(deductible),
            "I" if crown else "",
            _esc(reason),
            _esc(rng.choice(_CLAIM_NOTES)) if rng.random() < 0.1 else _NULL,
            "P" if pat.relat == 0 or rng.random() < 0.95 else "S",
            str(apt.prov),
            "0",
            "",
            _MIN_DATE,
            "0",
            str(pat.relat),
            "0",
            _money(writeoff),
            "0",
            "0",
            str(pat.inssub),
            str(tracking),
            "1" if rng.random() < 0.01 else "0",
            f"{pat.num}/{num}",
            str(user),
            _DAY_TEXT[day],
            _dt(stamp),
            _row_hash("claim", num, stamp) if stamp // _DAY >= _ROW_HASH_DAY else "",
            self._narrative(apt) if crown or rng.random() < 0.05 else "",
        ]
        self._emit("claim", fields)
        self._log(
            t + 60, _P_CLAIM_EDIT, user, f"Claim created for ${fee:.2f}", pat.num, num, "BILLING-PC"
        )
        if status in ("S", "R"):
            text = f"Claim sent to {_CARRIERS[pat.plan % len(_CARRIERS)]} via clearinghouse"
            self._log(sent, _P_CLAIM_SEND, 11, text, pat.num, num, "BILLING-PC")
        if rng.random() < _MISTAKE_RATE:
            copy = list(fields)
            copy[0] = str(self._id("claim"))
            copy[3:6] = [_MIN_DATE, "U", _MIN_DATE]
            copy[10], copy[13], copy[23] = "0.0", "", "0.0"
            copy[29] = f"{pat.num}/{copy[0]}"
            copy[32] = _dt(t + 90)
            copy[33] = ""
            self._emit("claim", copy)
            self.deleted["claim"].append(int(copy[0]))
            text = "Duplicate claim deleted."
            self._log(t + 200, _P_CLAIM_DELETE, user, text, pat.num, int(copy[0]), "BILLING-PC")
        return estimate, allowed

    def _narrative(self, apt: _Appointment) -> str:
        teeth = ", ".join(f"#{proc.tooth}" for proc in apt.procs if proc.tooth)
        return _esc(
            f"Pt presented with fractured cusp on {teeth or 'multiple teeth'}.\r\n"
            "Existing restoration > 50% of tooth structure.\r\n"
            f'<attachment type="xray" id="{self.rng.randbytes(6).hex()}"/>'
        )

    def _era(self, t: int, obj: object) -> None:
        assert isinstance(obj, tuple)
        pat, num, paid, estimate, writeoff, fee = obj
        assert isinstance(pat, _Patient)
        pat.ins_paid += paid
        pat.writeoff += writeoff
        text = f"Claim payment received: ${paid:.2f} of ${fee:.2f} (EFT), claim #{num}"
        self._log(t, _P_INS_PAY_CREATE, 11, text, pat.num, num, "BILLING-PC")
        owed = estimate - paid
        if owed > 1 and self.rng.random() < 0.6:
            self._push(t + self.rng.randrange(15, 45) * _DAY, 4, (pat, round(owed, 2)))

    def _checkout(self, pat: _Patient, apt: _Appointment, t: int, due: float) -> None:
        rng = self.rng
        if due < 1:
            return
        if rng.random() < (0.2 if pat.plan else 0.08):
            self._push(t + rng.randrange(20, 50) * _DAY, 4, (pat, round(due, 2)))
            return
        amount = round(due if rng.random() < 0.8 else due * rng.uniform(0.3, 0.9), 2)
        procs = apt.procs[: rng.choice((1, 1, 2, 3))]
        fees = max(1.0, sum(proc.fee for proc in procs))
        splits: list[_Split] = []
        remaining = amount
        for index, proc in enumerate(procs):
            if index == len(procs) - 1:
                share = remaining  # not rounded: OpenDental money is double
            else:
                share = round(amount * proc.fee / fees, 2)
                remaining -= share
            splits.append((proc.num, share, proc.prov, proc.date, 0, 0))
        kind = rng.choices(_CHECKOUT_TYPES, _CHECKOUT_WEIGHTS)[0]
        self._payment(pat, t, amount, kind, splits, user=rng.choice(_FRONT))

    def _stmt(self, t: int, obj: object) -> None:
        assert isinstance(obj, tuple)
        pat, owed = obj
        assert isinstance(pat, _Patient)
        assert isinstance(owed, float)
        rng = self.rng
        if rng.random() < 0.2:
            return
        at = _open_day(t // _DAY) * _DAY + 9 * 3600 + rng.randrange(8 * 3600)
        if at >= _NOW_T:
            return
        proc = pat.last_proc
        day = at // _DAY
        if proc is not None and rng.random() < 0.7:
            split = (proc.num, owed, proc.prov, proc.date, 0, 0)
        else:
            unattached = _ZERO_DATE if day < _UPGRADE_DAY else _DAY_TEXT[day]
            split = (0, owed, pat.prov, unattached, 0, 0)
        kind = rng.choice(("Check", "Patient Portal", "Online Payment", "Credit Card"))
        self._payment(pat, at, owed, kind, [split], user=11)
        if rng.random() < 0.01:
            # An overpayment refunded weeks later: a negative payment and split.
            refund = at + rng.randrange(7, 30) * _DAY
            if refund < _NOW_T:
                back = (0, -owed, pat.prov, _DAY_TEXT[refund // _DAY], 0, 0)
                self._payment(pat, refund, -owed, "Refund", [back], user=11, note="Refund")

    def _prepayment(self, pat: _Patient, apt: _Appointment, t: int, fee: float) -> None:
        amount = round(fee * 0.5, 2)
        unearned = self._def("PaySplitUnearnedType", "Treatment Plan Prepayment")
        split = (0, amount, pat.prov, _DAY_TEXT[t // _DAY], 0, unearned)
        note = "Prepayment for treatment plan"
        nums = self._payment(pat, t, amount, "Care Credit", [split], user=11, note=note)
        apt.prepaid = (nums[0], amount)

    def _transfer(self, pat: _Patient, apt: _Appointment, t: int) -> float:
        """Allocate the visit's prepayment to its first procedure; returns the amount."""
        assert apt.prepaid is not None
        prepaid, amount = apt.prepaid
        proc = apt.procs[0]
        unearned = self._def("PaySplitUnearnedType", "Treatment Plan Prepayment")
        day = _DAY_TEXT[t // _DAY]
        splits = [
            (0, -amount, pat.prov, day, prepaid, unearned),
            (proc.num, amount, proc.prov, day, 0, 0),
        ]
        self._payment(pat, t, 0.0, "", splits, user=11, note="Income transfer")
        return amount

    def _payment(
        self,
        pat: _Patient,
        t: int,
        amount: float,
        kind: str,
        splits: list[_Split],
        *,
        user: int,
        note: str | None = None,
        legacy: str | None = None,
        mistake: bool = False,
    ) -> list[int]:
        """Write a payment and its splits; returns the split numbers.

        ``kind`` is a PaymentTypes item, or "" for an income transfer (PayType 0).
        """
        rng = self.rng
        num = self._id("payment")
        day = t // _DAY
        deposit = 0
        stamp = t
        if kind in _DEPOSITED and not mistake:
            friday = day + (4 - day % 7) % 7
            deposit_t = friday * _DAY + 17 * 3600 + 40 * 60 + friday % 30
            if deposit_t < _NOW_T and day >= _GO_LIVE:
                # Making the deposit slip updates every payment on it in one statement.
                deposit = (friday - _GO_LIVE) // 7 + 1
                stamp = deposit_t
                self.deposits[friday] = self.deposits.get(friday, 0.0) + amount
        card = kind in ("Credit Card", "Debit Card", "Care Credit")
        receipt = ""
        if card:
            receipt = (
                f"APPROVED\r\nCard: VISA ************{rng.randrange(10000):04d}\r\n"
                f"Amount: ${amount:.2f}\r\nAuth: {rng.randbytes(3).hex().upper()}\r\n"
                f"Ref: {_DAY_TEXT[day]}-{num}\r\n"
            )
        if note is None:
            note = rng.choice(_PAYMENT_NOTES) if rng.random() < 0.05 else ""
        online = kind in ("Online Payment", "Patient Portal")
        fields = [
            str(num),
            str(self._def("PaymentTypes", kind)) if kind else "0",
            _DAY_TEXT[day],
            _money(amount),
            str(rng.randrange(1001, 9999)) if kind == "Check" else "",
            rng.choice(("US Bank", "Chase", "OnPoint CU")) if kind == "Check" else "",
            _esc(note),
            "1" if len(splits) > 1 else "0",
            str(pat.num),
            "0",
            _DAY_TEXT[day],
            str(deposit),
            _esc(receipt),
            "0",
            str(user),
            _dt(stamp),
            "2" if card else "0",
            "0",
            _MIN_DATE,
            rng.randbytes(8).hex() if online else "",
            "0",
            "1" if card else "0",
            _money(amount * 0.0275 + 0.1) if card else "0.0",
            _NULL if legacy is None else legacy,
        ]
        self._emit("payment", fields)
        if mistake:
            self.deleted["payment"].append(num)
        else:
            pat.paid += amount
            if day >= _GO_LIVE:
                text = f"{pat.lname}, {pat.fname}, ${amount:.2f}"
                self._log(t, _P_PAYMENT_CREATE, user, text, pat.num, num, rng.choice(_FRONT_PCS))
        hashed = day >= _ROW_HASH_DAY
        split_nums = []
        for proc_num, share, prov, proc_date, fsplit, unearned in splits:
            split = self._id("paysplit")
            split_nums.append(split)
            self._emit(
                "paysplit",
                [
                    str(split),
                    _money(share),
                    str(pat.num),
                    proc_date,
                    str(num),
                    "0",
                    "0",
                    str(prov),
                    "0",
                    _DAY_TEXT[day],
                    str(proc_num),
                    _DAY_TEXT[day],
                    str(unearned),
                    "0",
                    str(user),
                    _dt(t),
                    str(fsplit),
                    "0",
                    "0",
                    "0",
                    _row_hash("paysplit", split, t) if hashed else "",
                ],
            )
            if mistake:
                self.deleted["paysplit"].append(split)
        if not mistake and rng.random() < _MISTAKE_RATE:
            self._payment(pat, t + 20, amount, kind, splits, user=user, note=note, mistake=True)
            if day >= _GO_LIVE:
                text = f"Payment deleted (entered twice): ${amount:.2f}"
                self._log(t + 95, _P_PAYMENT_EDIT, user, text, pat.num, num, "FRONT1")
        return split_nums

    # -- the office's background -----------------------------------------------------------

    def _daily_noise(self, day: int) -> None:
        rng = self.rng
        weekday = day % 7
        start = day * _DAY
        if weekday < 5:
            # About one logged-in user per thousand patients (fractions by chance).
            users = len(self.patients) / 1000
            for index in range(int(users) + (1 if rng.random() < users - int(users) else 0)):
                user, name = _USERS[index % len(_USERS)]
                comp = _WORKSTATIONS[index % len(_WORKSTATIONS)]
                on = start + 7 * 3600 + 30 * 60 + rng.randrange(3600)
                off = start + 17 * 3600 + rng.randrange(5400)
                self._log(on, _P_USER_LOG_ON_OFF, user, f"User: {name} has logged on.", comp=comp)
                self._log(off, _P_USER_LOG_ON_OFF, user, f"User: {name} has logged off.", comp=comp)
            if weekday == 4 and day in self.deposits:
                text = f"Deposit slip created: ${self.deposits.pop(day):.2f}"
                t = start + 17 * 3600 + 40 * 60 + day % 30
                self._log(t, _P_DEPOSIT, 11, text, comp="BILLING-PC")
            if weekday == 0:
                text = "Production and Income report run for last week."
                self._log(start + 8 * 3600 + 5, _P_REPORT_PROD_INC, 1, text, comp="DR-OFFICE")
        if not self.patients:
            return
        # Portal logins, recall texts, e-mails and tasks, in proportion to the patient base.
        rate = len(self.patients) * (_NOISE_PER_PATIENT_DAY if weekday < 5 else 0.004)
        count = int(rate) + (1 if rng.random() < rate - int(rate) else 0)
        for _ in range(count):
            pat = self.patients[rng.randrange(len(self.patients))]
            t = start + 7 * 3600 + rng.randrange(14 * 3600)
            roll = rng.random()
            if roll < 0.35:
                text = f"Patient Portal login: {pat.email or pat.num}"
                self._log(t, _P_PORTAL_LOGIN, 0, text, pat.num, 0, _SERVER, 6)
            elif roll < 0.65:
                text = f"Recall reminder text sent to {pat.cell or pat.hm or 'no phone'}"
                self._log(t, _P_COMMLOG_EDIT, 0, text, pat.num, 0, _SERVER, 3)
            elif roll < 0.85:
                text = f'Email sent: "Your statement"\tTo: {pat.email or "(none)"}'
                self._log(t, _P_EMAIL_SEND, rng.choice(_FRONT), text, pat.num, 0, "FRONT2")
            else:
                text = f"Task edited: call {pat.fname} about balance"
                self._log(t, _P_TASK_EDIT, rng.choice(_FRONT), text, pat.num, 0, "FRONT1")

    def _flush_log(self, day: int) -> None:
        entries = self.log_today
        if not entries:
            return
        entries.sort(key=lambda entry: (entry[0], entry[1]))
        out = self.lines["securitylog"]
        first = num = self.next_id["securitylog"]
        hashed = day >= _LOG_HASH_DAY
        for t, _, perm, user, pat, text, comp, fkey, source, defnum, previous in entries:
            when = _dt(t)
            digest = (
                hashlib.sha256(f"{num}|{perm}|{user}|{when}|{text}".encode()).hexdigest()
                if hashed
                else _NULL
            )
            out.append(
                f"{num}\t{perm}\t{user}\t{when}\t{_esc(text)}\t{pat}\t{comp}\t{fkey}\t{source}"
                f"\t{defnum}\t0\t{previous}\t{digest}"
            )
            num += 1
        self.buffered += num - first
        self.next_id["securitylog"] = num
        self.log_today = []

    # -- the end ---------------------------------------------------------------------------

    def _finish(self) -> None:
        aging = _NOW_T - _DAY + 21 * 3600 + 5
        self.day_end = _NOW_T
        for apt in list(self.pending.values()):
            self._finalize(apt)
        while self.log_later and self.log_later[0][0] < _NOW_T:
            self.log_today.append(heapq.heappop(self.log_later))
        self._log(aging, _P_AGING_RAN, 0, "Aging ran by the OpenDental Service.", comp=_SERVER)
        self._flush_log(_day(NOW) - 1)
        families: dict[int, list[_Patient]] = {}
        for pat in self.patients:
            families.setdefault(pat.guarantor, []).append(pat)
        for pat in self.patients:
            self._emit_patient(pat, families.get(pat.num, []), aging)
        self._legacy_notes()

    def _emit_patient(self, pat: _Patient, family: list[_Patient], aging: int) -> None:
        rng = self.rng
        balance = round(pat.charges - pat.paid - pat.ins_paid - pat.writeoff, 2)
        buckets = ["0.0", "0.0", "0.0", "0.0"]
        ins_est = total = 0.0
        stamp = pat.stamp
        if family:
            owed = (m.charges - m.paid - m.ins_paid - m.writeoff for m in family)
            total = round(sum(owed), 2)
            ins_est = round(sum(member.ins_pending for member in family), 2)
            age = _day(NOW) - max(member.last_charge for member in family)
            bucket = 0 if total < 0 or age <= 30 else 1 if age <= 60 else 2 if age <= 90 else 3
            buckets[bucket] = _money(total)
            if total or ins_est:
                stamp = aging  # one aging statement updates every family with a balance
        status = 0
        deceased = _MIN_DT
        inactive = pat.last_charge and _day(NOW) - pat.last_charge > 730
        roll = rng.random()
        if pat.birth != _MIN_DATE and pat.birth < "1950" and roll < 0.05:
            status = 5
            deceased = f"{_DAY_TEXT[_day(NOW) - rng.randrange(30, 1500)]} 00:00:00"
        elif roll < 0.004:
            status = 4
        elif pat.visits == 0 and pat.guarantor != pat.num and roll < 0.5:
            status = 1
        elif inactive and roll < 0.5:
            status = 2
        elif inactive and roll < 0.55:
            status = 3
        fields = [
            str(pat.num),
            _esc(pat.lname),
            _esc(pat.fname),
            pat.middle,
            pat.preferred,
            str(status),
            str(pat.gender),
            str(pat.position),
            pat.birth,
            pat.ssn,
            _esc(pat.address),
            pat.address2,
            pat.city,
            pat.state,
            pat.zip,
            pat.hm,
            pat.wk,
            pat.cell,
            str(pat.guarantor),
            pat.email,
            _money(round(balance - pat.ins_pending, 2)),
            str(pat.prov),
            str(pat.hyg),
            str(pat.fee_sched),
            str(pat.billing),
            _NULL if pat.addr_note is None else _esc(pat.addr_note),
            _NULL if pat.famfin is None else _esc(pat.famfin),
            *buckets,
            _money(ins_est),
            _money(total),
            pat.first_visit,
            "0",
            _NULL if pat.sched_before is None else pat.sched_before,
            _dt(stamp),
            deceased,
            pat.sec_entry,
            _row_hash("patient", pat.num, stamp) if stamp // _DAY >= _ROW_HASH_DAY else "",
        ]
        self._emit("patient", fields)

    def _emit_appointment(self, apt: _Appointment) -> None:
        unset = _unset_dt(apt.entry // _DAY if apt.entry > 0 else _GO_LIVE)
        descript = self._descript(apt)
        resto = apt.kind == _RESTO
        hashed = apt.stamp // _DAY >= _ROW_HASH_DAY
        self._emit(
            "appointment",
            [
                str(apt.num),
                str(apt.pat.num),
                str(apt.status),
                apt.pattern,
                str(apt.confirmed),
                "1" if resto and len(apt.procs) > 2 else "0",
                str(apt.op),
                _NULL if apt.note is None else _esc(apt.note),
                str(apt.prov),
                str(apt.hyg),
                _dt(apt.at),
                "0",
                str(apt.unsched),
                "1" if apt.kind == _NEWPAT else "0",
                descript,
                str(1 + apt.num % 6) if resto else "0",
                "0",
                "0" if resto else "1",
                _dt(apt.stamp),
                apt.arrived or unset,
                apt.seated or unset,
                apt.dismissed or unset,
                str(apt.plan),
                "0",
                apt.asked,
                f'<span color="-16777216">{descript}</span>' if descript else "",
                str(apt.color),
                "0",
                str(apt.user),
                _MIN_DT if apt.entry < 0 else _dt(apt.entry),
                str(apt.priority),
                "",
                _row_hash("appointment", apt.num, apt.stamp) if hashed else "",
            ],
        )

    def _emit_proc(
        self, proc: _Proc, *, entry: str | None = None, entry_c: str | None = None
    ) -> None:
        kind = proc.code[4]
        if entry_c is None:
            entry_c = proc.date_complete if proc.status == _C else _MIN_DATE
        self._emit(
            "procedurelog",
            [
                str(proc.num),
                str(proc.pat.num),
                str(proc.apt),
                proc.date,
                _money(proc.fee),
                proc.surf,
                proc.tooth,
                str(proc.priority),
                str(proc.status),
                str(proc.prov),
                "0",
                "0",
                "I" if kind == "crown" else "",
                "",
                entry_c,
                "0",
                "K02.52" if kind == "resto" and proc.num % 7 == 0 else "",
                str(proc.code[0]),
                "GT" if kind == "implant" else _NULL,
                _NULL,
                _NULL,
                _NULL,
                "1",
                proc.time,
                _dt(proc.stamp),
                "4" if kind == "surg" else "0",
                "1.7" if kind == "surg" else "0",
                str(proc.locked),
                _money(proc.discount),
                str(proc.user),
                entry or _dt(proc.entry),
                proc.date_complete,
                str(proc.urgency),
            ],
        )

    def _legacy_notes(self) -> None:
        rng = self.rng
        for index in range(self.patients_target // 20):
            num = self._id("legacy_note")
            # The leftovers' quirks recur every ten notes, so even a small clinic has each:
            # no patient (NULL or 0), no text, no date, and a zero date.
            quirk = index % 10
            if quirk == 3:
                pat = _NULL
            elif quirk == 7:
                pat = "0"
            else:
                pat = str(self.patients[rng.randrange(len(self.patients))].num)
            text = _NULL if quirk == 5 else _esc(_LEGACY_NOTES[index % len(_LEGACY_NOTES)])
            if quirk == 1:
                entry = _NULL
            elif quirk in (2, 8):
                entry = _ZERO_DATE
            else:
                entry = (date(1998, 1, 1) + timedelta(days=rng.randrange(7600))).isoformat()
            self._emit("legacy_note", [str(num), pat, text, entry])


def generate_clinic(
    patients: int = DEFAULT_PATIENTS,
    seed: int = DEFAULT_SEED,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[Chunk]:
    """Yield the clinic in chunks of about ``chunk_rows`` rows; the last chunk may be small.

    The concatenated output is the same for any ``chunk_rows``. Pure computation: no I/O.
    """
    if isinstance(patients, bool) or not isinstance(patients, int) or patients < 1:
        raise ValueError(f"patients must be a positive integer, got {patients!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    return _Clinic(patients, seed, chunk_rows).run()
