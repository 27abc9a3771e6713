"""Cold start: the time to import the Lambda entry module, and the deployment package's size."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROBE = "import time; t = time.perf_counter(); import app; print(time.perf_counter() - t)"


def measure(samples: int = 5) -> dict[str, Any]:
    times = []
    for _ in range(samples):
        out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    zips = sorted((ROOT / ".chalice" / "deployments").glob("*.zip"), key=lambda p: p.stat().st_mtime)
    package = ROOT / "infra" / "build" / "package" / "deployment.zip"
    sized = package if package.exists() else (zips[-1] if zips else None)
    return {
        "import_app_s": {"n": samples, "median": round(statistics.median(times), 3), "max": round(max(times), 3)},
        "deployment_zip_mb": round(sized.stat().st_size / 1e6, 1) if sized else None,
        "deployment_zip_from": str(sized.relative_to(ROOT)) if sized else "run `make package` first",
    }
