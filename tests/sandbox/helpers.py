"""HTTP client helper of the sandbox tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from rewards_sandbox import (
    DEMO_HPGAMES_MERCHANT_ID,
    DEMO_HPGAMES_SECRET,
    DEMO_THANX_MERCHANT_ID,
    SandboxServer,
)
from rewards_sandbox.testing import (
    HPGAMES_REWARDS_PATH,
    hpgames_body,
    job_states,
    reward_statuses,
    thanx_headers,
)

#: Fast state machines so the tests stay short.
FAST = {"revoke_seconds": 0.6, "issue_seconds": 1.0}


class SandboxClient:
    """Thin ``requests`` client for one running sandbox."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.url = server.base_url
        self.session = requests.Session()

    # Thanx
    def thanx(self, method: str, path: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any):
        """Send a Thanx request with the demo headers (``headers`` replaces them when given)."""
        return self.session.request(
            method,
            self.url + path,
            headers=thanx_headers() if headers is None else headers,
            timeout=10,
            **kwargs,
        )

    def get_job(self, job_id: str, merchant_id: str = DEMO_THANX_MERCHANT_ID, **kwargs: Any):
        """GET an issuance job."""
        params = {"merchant_id": merchant_id}
        return self.thanx("GET", f"/partner/issuance_jobs/{job_id}", params=params, **kwargs)

    def revoke(self, job_id: str, merchant_id: str = DEMO_THANX_MERCHANT_ID, **kwargs: Any):
        """POST a revoke."""
        return self.thanx(
            "POST", f"/partner/issuance_jobs/{job_id}/revoke", json={"merchant_id": merchant_id}, **kwargs
        )

    # HPGames
    def hpg(
        self,
        endpoint: str,
        fields: Mapping[str, Any] | None = None,
        *,
        merchant_id: str = DEMO_HPGAMES_MERCHANT_ID,
        secret: str = DEMO_HPGAMES_SECRET,
        **overrides: Any,
    ):
        """POST a signed HPGames request; ``overrides`` replace body fields after signing."""
        body = {**hpgames_body(fields, merchant_id=merchant_id, secret=secret), **overrides}
        return self.session.post(f"{self.url}{HPGAMES_REWARDS_PATH}/{endpoint}", json=body, timeout=10)

    # Inspection
    def snapshot(self) -> dict[str, Any]:
        """GET /_sandbox/state."""
        response = self.session.get(f"{self.url}/_sandbox/state", timeout=10)
        assert response.status_code == 200
        return response.json()

    def job_states(self, merchant_id: str = DEMO_THANX_MERCHANT_ID) -> dict[str, str]:
        """``{job id: state}`` of a Thanx merchant."""
        return job_states(self.snapshot(), merchant_id)

    def reward_statuses(self, merchant_id: str = DEMO_HPGAMES_MERCHANT_ID) -> dict[str, str]:
        """``{reward id: status}`` of an HPGames merchant."""
        return reward_statuses(self.snapshot(), merchant_id)
