"""What runs while Airflow parses a generated DAG: workflow(__file__), the loader and cache, the
operator (docs/architecture.md).
"""

from __future__ import annotations
