"""The fleet's data and its rules: settings, the config model, the template library, workflow IDs, the
store on disk (docs/architecture.md).
"""

from __future__ import annotations
