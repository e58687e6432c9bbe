"""The replication job: OpenDental source → MySQL replica → PostgreSQL warehouse."""

from aioetl.replication.columns import Column, ZeroDates, postgres_type
from aioetl.replication.job import ReplicationOptions, ReplicationTarget, Replicator
from aioetl.replication.results import LegResult, ProgressListener, TableResult

__all__ = [
    "Column",
    "LegResult",
    "ProgressListener",
    "ReplicationOptions",
    "ReplicationTarget",
    "Replicator",
    "TableResult",
    "ZeroDates",
    "postgres_type",
]
