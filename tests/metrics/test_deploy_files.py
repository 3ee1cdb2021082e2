"""The monitoring and scaling files under docker/ refer to metrics the service exports, carry
no per-job or per-user series, and let workers drain before they are killed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import Counter, Histogram

from elasticthought.metrics import definitions
from elasticthought.metrics.state import GAUGE_NAMES

DOCKER = Path(__file__).resolve().parents[2] / "docker"
NAME_RE = re.compile(r"\belasticthought_[a-z_]+")
FORBIDDEN = re.compile(r"user|_id\b|\bid\b|worker_id|job_id|instance_id", re.IGNORECASE)


def exported() -> set[str]:
    """Every series name the service can export."""
    names = set(GAUGE_NAMES)
    for value in vars(definitions).values():
        if isinstance(value, Counter):
            names.add(value._name + "_total")
        elif isinstance(value, Histogram):
            names.update(value._name + s for s in ("_bucket", "_sum", "_count"))
    return names


def check_expr(expr: str) -> None:
    used = set(NAME_RE.findall(expr))
    assert used, expr
    assert used <= exported(), f"unknown metric(s) {used - exported()} in {expr}"
    assert not FORBIDDEN.search(expr), f"a per-user or per-job label in {expr}"


def test_grafana_dashboard_panels_use_exported_aggregates() -> None:
    dashboard = json.loads((DOCKER / "grafana" / "elasticthought-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        check_expr(expr)
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("queue depth", "duration", "wait", "throughput", "error"):
        assert topic in titles


def test_keda_and_hpa_scale_on_the_recommended_workers() -> None:
    docs = list(yaml.safe_load_all((DOCKER / "k8s" / "keda-scaledobject.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    scaled = kinds["ScaledObject"]
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus"
    check_expr(trigger["metadata"]["query"])
    assert "elasticthought_scaling_recommended_workers" in trigger["metadata"]["query"]
    deployment = kinds["Deployment"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert pod["terminationGracePeriodSeconds"] > float(env["ET_GRACE_SECONDS"])
    hpa = yaml.safe_load((DOCKER / "k8s" / "hpa.yaml").read_text())
    metric = hpa["spec"]["metrics"][0]["external"]["metric"]["name"]
    assert metric in exported()


def test_compose_workers_drain_within_the_stop_grace_period() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yml").read_text())
    worker = compose["services"]["worker"]
    grace = float(worker["environment"]["ET_GRACE_SECONDS"])
    assert float(worker["stop_grace_period"].rstrip("s")) > grace
