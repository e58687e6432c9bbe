"""Options of one ``replicate`` run."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from aioetl.config.settings import PostgresSchema

__all__ = ["ReplicationOptions", "ReplicationTarget"]


class ReplicationTarget(enum.StrEnum):
    """How far ``aioetl replicate`` copies."""

    REPLICA = "replica"
    WAREHOUSE = "warehouse"
    ALL = "all"


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplicationOptions:
    """Options of one run; ``None`` means pipeline.yml's ``replication`` section."""

    target: ReplicationTarget = ReplicationTarget.ALL
    concurrency: int | None = None
    full: bool = False
    reconcile: bool = False
    sentinel_dates_as_null: bool | None = None
    schema: PostgresSchema = PostgresSchema.RAW
    #: Run outside ``replication.allowed_hours`` on the production source.
    force: bool = False

    def describe(self) -> dict[str, object]:
        """The options as plain values (for the run history)."""
        return {
            "target": self.target.value,
            "concurrency": self.concurrency,
            "full": self.full,
            "reconcile": self.reconcile,
            "schema": self.schema.value,
            "force": self.force,
        }

    def __post_init__(self) -> None:
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
