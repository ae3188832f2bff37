"""Where things are: the repository root, and whether the run is CI (where nothing may skip)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ON_CI = os.environ.get("CI", "").lower() == "true"
