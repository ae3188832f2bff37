"""``python -m bench``: run the whole benchmark (see bench/run.py)."""

from __future__ import annotations

import sys

from bench.run import main

sys.exit(main())
