"""Container health check: exit 0 when the worker's /metrics says propensity_worker_ready 1.

Stdlib only, so it runs in the image without importing the project. The port comes from
PROPENSITY_METRICS_PORT (default 9464), the same variable the worker reads.
"""

import os
import sys
import urllib.request

READY_METRIC = "propensity_worker_ready"


def is_ready(exposition: str) -> bool:
    """True when the exposition text has the unlabelled ready gauge at 1."""
    for line in exposition.splitlines():
        name, _, value = line.partition(" ")
        if name == READY_METRIC:
            try:
                return float(value.split()[0]) == 1.0
            except (IndexError, ValueError):
                return False
    return False


def main() -> int:
    port = os.environ.get("PROPENSITY_METRICS_PORT") or "9464"
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            text = response.read().decode("utf-8", "replace")
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if not is_ready(text):
        print(f"unhealthy: {READY_METRIC} is not 1 at {url}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
