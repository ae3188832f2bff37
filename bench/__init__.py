"""dagfleet benchmarks (issue #8): sync scaling, DAG parse cost, config API load, freshness.

Run with ``make bench`` (or ``BENCH_QUICK=1 make bench`` for a smoke run). Not tests.
"""

from __future__ import annotations
