"""A synthetic OpenDental clinic for demos and tests: :func:`create_demo_clinic`.

The clinic has OpenDental 24.3's table and column names and MySQL types, MyISAM tables,
and the data quirks of a real office (sentinel and zero dates, NULLs, 0 keys, hard-delete
gaps, runs of equal change stamps, Unicode and escaped text), deterministic for a seed.
"""

from aioetl.demo.generate import DEFAULT_PATIENTS, DEFAULT_SEED
from aioetl.demo.load import create_demo_clinic
from aioetl.demo.schema import DEMO_TABLES

__all__ = ["DEFAULT_PATIENTS", "DEFAULT_SEED", "DEMO_TABLES", "create_demo_clinic"]
