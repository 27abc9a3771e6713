"""Cold start: the time to import the Lambda entry module, and the size of the deployment package
`chalice package` builds (built here, as `make package` does, so it is this commit's)."""

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
    built = subprocess.run(["bash", "infra/package.sh"], cwd=ROOT, capture_output=True, text=True)
    package = ROOT / "infra" / "build" / "package" / "deployment.zip"
    sized = package if built.returncode == 0 and package.exists() else None
    return {
        "import_app_s": {"n": samples, "median": round(statistics.median(times), 3), "max": round(max(times), 3)},
        "deployment_zip_mb": round(sized.stat().st_size / 1e6, 1) if sized else None,
        "deployment_zip_from": str(sized.relative_to(ROOT)) if sized else f"package.sh failed: {built.stderr[-300:]}",
    }
