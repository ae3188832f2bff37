"""Helpers shared by the tests, one module per concept, imported as ``support.<module>``.

``pyproject.toml`` puts ``tests/`` on ``sys.path``; tests/README.md lists the modules.
"""

from __future__ import annotations
