"""Shared fixtures: real processes on ephemeral loopback ports, nothing mocked."""

from __future__ import annotations

import random

import pytest

from federation.topology import ClusterSpec, Topology


def random_pool(index: int) -> str:
    """An LB pool of 127/8 unlikely to collide with another test run on the same machine."""
    return f"127.{random.randint(20, 250)}.{random.randint(0, 255)}.{16 * index}/28"


def three_clusters() -> Topology:
    return Topology(
        clusters=(
            ClusterSpec("aws-us-east-1a", "aws", "us-east-1", ("us-east-1a",), random_pool(0)),
            ClusterSpec("aws-us-east-1b", "aws", "us-east-1", ("us-east-1b",), random_pool(1)),
            ClusterSpec("gcp-europe-west1-b", "gcp", "europe-west1", ("europe-west1-b",), random_pool(2)),
        )
    )


@pytest.fixture
def topology() -> Topology:
    return three_clusters()
