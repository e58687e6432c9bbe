"""How the command line writes log records: one line each, never a traceback.

Libraries log what they see their own way: SQLAlchemy's pool logs ``Exception during
reset or similar`` at ERROR with a full traceback whenever a connection that was killed
is returned, which aioetl already handles (the statement is retried, the connection
discarded). On stderr that is noise that looks like a crash. So the CLI's handler

- drops the traceback of every record, adding only the exception's type (an exception's
  text may hold a value from a row, and a third-party message was never scrubbed);
- keeps aioetl's own tracebacks (an unexpected error in a table) at ``--log-level DEBUG``;
- demotes the pool's messages about closing a broken connection to DEBUG.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Final, TextIO

__all__ = ["LOG_FIELDS", "LOG_FORMAT", "JsonFormatter", "OneLineHandler", "configure_logging"]

LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_OWN_LOGGERS: Final = "aioetl"
#: SQLAlchemy's pool, when it closes or resets a connection that is already broken.
_POOL_LOGGERS: Final = "sqlalchemy.pool"
_POOL_NOISE: Final = (
    "Exception during reset or similar",
    "Exception closing connection",
    "Exception terminating connection",
)


#: Keys of ``--log-format json`` besides ts, level, logger and event: set by aioetl's
#: records through ``extra=`` (a table's progress and outcome), absent otherwise.
LOG_FIELDS: Final = ("table", "leg", "rows", "new_rows", "reread_rows", "seconds", "error")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, for log shippers: ``ts`` (UTC, ISO 8601), ``level``,
    ``logger``, ``event`` (the message) and, where a record has them, ``table``, ``leg``,
    ``rows`` (with ``new_rows`` and ``reread_rows`` when a leg finishes), ``seconds`` and
    ``error``. A record's traceback never appears: an
    exception adds only its type, as ``error`` when the record has none."""

    def format(self, record: logging.LogRecord) -> str:
        moment = dt.datetime.fromtimestamp(record.created, dt.UTC)
        entry: dict[str, object] = {
            "ts": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key in LOG_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info and record.exc_info[1] is not None and "error" not in entry:
            entry["error"] = type(record.exc_info[1]).__name__
        return json.dumps(entry, ensure_ascii=False, default=str)


def _own(record: logging.LogRecord) -> bool:
    return record.name == _OWN_LOGGERS or record.name.startswith(_OWN_LOGGERS + ".")


def _demoted(record: logging.LogRecord) -> bool:
    return record.name.startswith(_POOL_LOGGERS) and str(record.msg).startswith(_POOL_NOISE)


class OneLineHandler(logging.StreamHandler[TextIO]):
    """Writes each record on one line to ``stream`` (default stderr; see the module doc).

    ``level`` is the CLI's level: a demoted record is written only when it is DEBUG.
    """

    def __init__(
        self, *, level: int, stream: TextIO | None = None, json_lines: bool = False
    ) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self._cli_level = level
        self.setFormatter(JsonFormatter() if json_lines else logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        # A copy: other handlers (a test's capture) still see the record as it was made.
        line = logging.makeLogRecord(record.__dict__)
        if _demoted(record):
            line.levelno, line.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
            if self._cli_level > logging.DEBUG:
                return
        keep = _own(record) and self._cli_level <= logging.DEBUG
        if not keep and (record.exc_info or record.stack_info):
            kind = record.exc_info[1] if record.exc_info else None
            if kind is not None:
                line.msg = f"{line.getMessage()} ({type(kind).__name__})"
                line.args = None
            line.exc_info, line.exc_text, line.stack_info = None, None, None
        super().emit(line)


def configure_logging(level: int, *, json_lines: bool = False) -> None:
    """Log to stderr at ``level`` through a :class:`OneLineHandler` (JSON objects with
    ``json_lines``); like :func:`logging.basicConfig`, nothing changes if the root logger
    already has handlers."""
    handler = OneLineHandler(level=level, json_lines=json_lines)
    logging.basicConfig(level=level, handlers=[handler])
