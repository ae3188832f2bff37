"""Test helpers shared by the fault suite and the benchmarks (importable as ``support``)."""

from __future__ import annotations
