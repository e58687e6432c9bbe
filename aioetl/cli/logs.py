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

import logging
import sys
from typing import Final, TextIO

__all__ = ["LOG_FORMAT", "OneLineHandler", "configure_logging"]

LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_OWN_LOGGERS: Final = "aioetl"
#: SQLAlchemy's pool, when it closes or resets a connection that is already broken.
_POOL_LOGGERS: Final = "sqlalchemy.pool"
_POOL_NOISE: Final = (
    "Exception during reset or similar",
    "Exception closing connection",
    "Exception terminating connection",
)


def _own(record: logging.LogRecord) -> bool:
    return record.name == _OWN_LOGGERS or record.name.startswith(_OWN_LOGGERS + ".")


def _demoted(record: logging.LogRecord) -> bool:
    return record.name.startswith(_POOL_LOGGERS) and str(record.msg).startswith(_POOL_NOISE)


class OneLineHandler(logging.StreamHandler[TextIO]):
    """Writes each record on one line to ``stream`` (default stderr; see the module doc).

    ``level`` is the CLI's level: a demoted record is written only when it is DEBUG.
    """

    def __init__(self, *, level: int, stream: TextIO | None = None) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self._cli_level = level
        self.setFormatter(logging.Formatter(LOG_FORMAT))

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


def configure_logging(level: int) -> None:
    """Log to stderr at ``level`` through a :class:`OneLineHandler`; like
    :func:`logging.basicConfig`, nothing changes if the root logger already has handlers."""
    logging.basicConfig(level=level, handlers=[OneLineHandler(level=level)])
