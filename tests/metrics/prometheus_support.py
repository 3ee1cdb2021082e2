"""A real Prometheus server (Debian's `prometheus` package) for tests: scrapes given loopback
targets every second into a temporary TSDB; `query(expr)` asks its HTTP API."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.support.pouchdb import free_port

CANDIDATES = ("/usr/bin/prometheus", "/usr/local/bin/prometheus")


def prometheus_binary() -> str:
    """The prometheus binary; fails in CI (CI installs it), skips elsewhere when missing."""
    found = shutil.which("prometheus") or next((p for p in CANDIDATES if os.path.exists(p)), None)
    if found:
        return found
    message = "Prometheus is not installed (apt-get install prometheus)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: elasticthought
    static_configs:
{targets}
"""


class Prometheus:
    """One prometheus process; stop() ends it."""

    def __init__(self, tmp_path: Path, targets: dict[str, str]) -> None:
        self.dir = tmp_path / "prometheus"
        self.dir.mkdir()
        lines = []
        for service, target in targets.items():
            lines += [f"      - targets: ['{target}']", f"        labels: {{service: {service}}}"]
        config = self.dir / "prometheus.yml"
        config.write_text(CONFIG.format(targets="\n".join(lines)))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.dir / "prometheus.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [prometheus_binary(), f"--config.file={config}",
                 f"--storage.tsdb.path={self.dir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                cwd=str(self.dir), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"prometheus did not start:\n{self.log()}")
            time.sleep(0.1)

    def _ready(self) -> bool:
        try:
            return requests.get(self.url + "/-/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def query(self, expr: str) -> list[dict]:
        """The instant vector of `expr` now: [{"metric": {...}, "value": float}, ...]."""
        response = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert body.get("status") == "success", body
        return [
            {"metric": r["metric"], "value": float(r["value"][1])} for r in body["data"]["result"]
        ]

    def value(self, expr: str) -> float | None:
        """The single value of `expr` (None when it has no series)."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return result[0]["value"] if result else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
