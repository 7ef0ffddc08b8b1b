"""Run the worker as a child process and watch its /metrics: used by demo, bench and tests."""

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from streams.worker.settings import Settings


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def metric_value(self, name: str) -> float | None:
        """First sample of ``name`` (with or without labels), or None when absent."""
        for line in self.metrics().splitlines():
            if line.startswith((name + " ", name + "{")):
                return float(line.rsplit(" ", 1)[1])
        return None

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Block until the worker reports propensity_worker_ready 1; raise if it dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.process.returncode}:\n{self.log()[-3000:]}"
                )
            try:
                if self.metric_value("propensity_worker_ready") == 1.0:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log()[-3000:]}")

    def peak_rss_bytes(self) -> int | None:
        """The process's peak resident set size (Linux VmHWM), while it runs."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_worker(settings: Settings, log_path: Path) -> WorkerProcess:
    """Start ``propensity worker`` configured by ``settings`` (as environment variables)."""
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    return WorkerProcess(process, log_path, settings.metrics_port)
