"""The Sync Gateway sync function (docker/sync-function.js): its Node tests
(sync_function.test.js, run here with `node --test`) and its copy in docker/sync-gateway.json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYNC_FUNCTION = REPO / "docker" / "sync-function.js"
NODE_TESTS = Path(__file__).with_name("sync_function.test.js")


def node() -> str:
    found = shutil.which("node")
    if not found:
        message = "Node.js is needed to test the Sync Gateway sync function"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_sync_function_node_tests_pass() -> None:
    result = subprocess.run(
        [node(), "--test", "--test-reporter=tap", str(NODE_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout and "# pass 7" in result.stdout, result.stdout[-3000:]


def test_sync_gateway_config_runs_this_sync_function() -> None:
    config = json.loads((REPO / "docker" / "sync-gateway.json").read_text())
    (db,) = config["databases"].values()
    assert db["sync"] == SYNC_FUNCTION.read_text()
    assert db["users"]["GUEST"]["disabled"] is True  # no anonymous reads
