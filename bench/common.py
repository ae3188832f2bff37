"""Small helpers shared by the benchmark parts."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def base_env(**extra: str) -> dict[str, str]:
    """The environment for subprocesses: no inherited DAGFLEET_*/AIRFLOW__* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGFLEET_", "AIRFLOW__", "AIRFLOW_HOME"))}
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env.update(extra)
    return env


def airflow_env(home: Path, dags: Path, **extra: str) -> dict[str, str]:
    """``base_env`` for an Airflow command over ``dags`` with its own ``home``: quiet, no telemetry."""
    return base_env(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
        DO_NOT_TRACK="1",
        SCARF_NO_ANALYTICS="true",
        **extra,
    )


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "p90": p90,
        "min": ordered[0],
        "max": ordered[-1],
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on (and how busy it was)."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = int(line.split()[1]) / 2**20
    except OSError:
        pass
    airflow = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m; print(m.version('apache-airflow'))"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gb": round(mem_gb, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "airflow": airflow,
        "loadavg_start": list(os.getloadavg()),
    }
