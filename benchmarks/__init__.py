"""Benchmarks of aioetl: layer overhead, replication throughput against the physical limits
and the alternatives, concurrency, rate-limit precision and memory.

``python -m benchmarks`` runs them all and writes ``benchmarks/RESULTS.md``;
``python -m benchmarks --smoke`` runs them with tiny sizes (part of ``make test``);
``python -m benchmarks.<name>`` runs one. They use their own databases (``aioetl_bench``,
``aioetl_bench_replica``, PostgreSQL ``aioetl_bench``), never the test or demo ones.
"""
