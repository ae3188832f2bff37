"""The fleet's data and its rules: settings, the config model, the template library, workflow IDs, the
store on disk (docs/architecture.md).
"""

from __future__ import annotations

__version__ = "0.1.0"  # dagfleet.__version__: every wing reads it here, below them all
