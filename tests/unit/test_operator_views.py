"""The operator's views: the alert rules pass `promtool check rules`, and every metric the rules
and the Grafana dashboard query is one tbotd's /metrics actually exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tbotd.ops.metrics import render

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "tbotd.json"
METRIC = re.compile(r"\btbotd_[a-z0-9_]+")
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count")}


def exposed() -> set[str]:
    """Every series name /metrics can carry (a histogram's as its parts)."""
    names = set()
    body, _ = render()  # what the ops endpoint's /metrics serves
    for line in body.decode().splitlines():
        if line.startswith("# TYPE tbotd_"):
            _, _, name, kind = line.split()  # counters are typed under their _total name
            names |= {name + s for s in SUFFIXES.get(kind, ("",))}
    return names


def test_every_metric_the_alert_rules_use_is_exposed() -> None:
    """A rule over a metric tbotd never exports would never fire: none does."""
    used = set(METRIC.findall(ALERTS.read_text()))
    assert used, "the rules name tbotd metrics"
    assert used <= exposed(), sorted(used - exposed())


def test_every_dashboard_query_names_exposed_metrics() -> None:
    """Each panel has a query, and every metric a query names is on /metrics."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= len(dashboard["panels"])
    used = {m for e in exprs for m in METRIC.findall(e)}
    assert used <= exposed(), sorted(used - exposed())


def test_the_alert_rules_pass_promtool() -> None:
    """`promtool check rules` (Debian's prometheus package; .ci/run installs it) accepts them."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    result = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout
