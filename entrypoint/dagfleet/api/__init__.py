"""The config API client: HTTP, JSON limits, retries (docs/architecture.md)."""

from __future__ import annotations
