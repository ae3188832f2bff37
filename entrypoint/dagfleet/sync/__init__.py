"""The sync: plan the fleet from the config API, apply the plan to the store, report its status
(docs/architecture.md).
"""

from __future__ import annotations
