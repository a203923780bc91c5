"""Fixtures of the sandbox tests: a running sandbox per test and a small HTTP client for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rewards_sandbox import SandboxServer, running_sandbox

from tests.sandbox.helpers import FAST, SandboxClient


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A demo-seeded sandbox on 127.0.0.1, stopped after the test."""
    with running_sandbox(**FAST) as server:
        yield server


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[SandboxClient]:
    """A client of the ``sandbox`` fixture."""
    client = SandboxClient(sandbox)
    yield client
    client.session.close()
