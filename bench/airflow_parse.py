"""Run the real ``airflow dag-processor`` once over the dags folder and dump per-file stats.

Used by the parse benchmark in a subprocess (``python bench/airflow_parse.py OUT.json [-- ARGS]``)
with AIRFLOW_HOME / AIRFLOW__CORE__DAGS_FOLDER set. It goes through Airflow's own CLI entry
point (``airflow dag-processor --num-runs 1``): the manager forks one child per file and
pre-imports the top-level ``airflow.*`` imports of each file, exactly as in production. The
only addition is a hook on ``DagFileProcessorManager.after_run`` (Airflow's own extension
point) that writes ``_file_stats`` (the per-file ``last_duration`` Airflow measures and logs
in its "DAG File Processing Stats" table) to OUT.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

START = time.monotonic()
MARKS: dict[str, float] = {}


def main() -> int:
    out = Path(sys.argv[1])
    extra = sys.argv[3:] if sys.argv[2:3] == ["--"] else []
    from airflow.dag_processing.manager import DagFileProcessorManager

    ready = time.monotonic()
    original = DagFileProcessorManager.after_run

    def after_run(self: Any) -> None:
        original(self)
        files = [
            {
                "path": str(info.rel_path),
                "duration": stat.last_duration,
                "num_dags": stat.num_dags,
                "import_errors": stat.import_errors,
                "run_count": stat.run_count,
            }
            for info, stat in self._file_stats.items()
        ]
        out.write_text(
            json.dumps(
                {
                    "files": files,
                    "import_airflow_s": ready - START,
                    "loop_s": time.monotonic() - MARKS["loop_start"],
                }
            )
        )

    original_before = DagFileProcessorManager.before_run

    def before_run(self: Any) -> None:
        original_before(self)
        MARKS["loop_start"] = time.monotonic()

    DagFileProcessorManager.after_run = after_run  # type: ignore[method-assign]
    DagFileProcessorManager.before_run = before_run  # type: ignore[method-assign]
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", "dag-processor", "--num-runs", "1", *extra]
    airflow_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
