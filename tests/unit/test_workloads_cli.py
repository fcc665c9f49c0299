"""The rollout verbs' pure parts: kubectl's status lines and durations, as tables."""

from __future__ import annotations

import click
import pytest

from federation.cli.workloads import parse_duration, status_message


def dep(*, generation=2, observed=2, replicas=4, updated=4, total=4, available=4, stalled=False):
    conditions = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}] if stalled else []
    return {
        "metadata": {"name": "web", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": observed, "updatedReplicas": updated, "replicas": total,
                   "availableReplicas": available, "conditions": conditions},
    }


@pytest.mark.parametrize(
    "d,expected",
    [
        (dep(observed=1), ("Waiting for deployment spec update to be observed...", False, None)),
        (dep(updated=2, total=6), ("Waiting for rollout to finish: 2 out of 4 new replicas have been updated...", False, None)),
        (dep(total=5), ("Waiting for rollout to finish: 1 old replicas are pending termination...", False, None)),
        (dep(available=3), ("Waiting for rollout to finish: 3 of 4 updated replicas are available...", False, None)),
        (dep(), ('deployment "web" successfully rolled out', True, None)),
        (dep(updated=1, stalled=True), ("", False, 'deployment "web" exceeded its progress deadline')),
    ],
)
def test_status_message(d, expected):
    assert status_message(d) == expected


@pytest.mark.parametrize("text,seconds", [("0", 0), ("30s", 30), ("2m", 120), ("1m30s", 90), ("1h", 3600), ("500ms", 0.5), ("1.5", 1.5)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5x", "s30"])
def test_parse_duration_rejects(text):
    with pytest.raises(click.BadParameter):
        parse_duration(text)


def test_deployment_table_rows():
    from datetime import datetime, timezone

    from federation import printers

    d = {
        "metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}},
        "status": {"readyReplicas": 5, "updatedReplicas": 6, "availableReplicas": 5, "clusters": [
            {"cluster": "a", "clusterReady": True, "desiredReplicas": 3, "availableReplicas": 3},
            {"cluster": "b", "clusterReady": True, "desiredReplicas": 3, "availableReplicas": 2},
            {"cluster": "c", "clusterReady": False, "desiredReplicas": 0},
        ]},
    }
    now = datetime(2026, 1, 1, 0, 0, 42, tzinfo=timezone.utc)
    text = printers.table("deployments", [d], now, wide=True)
    header, row = (line.split() for line in text.splitlines())
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "CLUSTERS", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert row == ["web", "5/6", "6", "5", "1/3", "42s", "app", "nginx:2", "app=web"]
