"""Sending a drift report to a webhook: checked URLs, a POST that never raises, and when to send."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from ..version import __version__
from .report import DriftReport

WHEN = ("drift", "always")


def check_webhook_url(url: str) -> str:
    """Only http(s): urllib would also open file:// and ftp:// URLs."""
    if not re.match(r"^https?://[^/\s]+", url or ""):
        raise UserError(f"not an http(s) URL: {url!r}", hint="--webhook https://hooks.example.com/...")
    return url


def post_webhook(url: str, payload: dict[str, Any], timeout: float = 10.0) -> str | None:
    """POST ``payload`` as JSON; returns None on a 2xx answer, else what went wrong (never raises:
    a failed alert must not hide the drift verdict)."""
    request = urllib.request.Request(
        check_webhook_url(url),
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": f"fieldtune/{__version__}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked
            response.read()
        return None
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code} {e.reason}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        return str(getattr(e, "reason", e))


@dataclass(frozen=True)
class WebhookAlert:
    """Where a drift report goes (``url``, None for nowhere) and when: on ``drift`` only, or ``always``.

    Checked when made, so a bad URL is refused before any drift is computed.
    """

    url: str | None
    when: str = "drift"

    def __post_init__(self) -> None:
        if self.when not in WHEN:
            raise UserError(f"--webhook-on {self.when!r}", hint="use drift or always")
        if self.url:
            check_webhook_url(self.url)

    def send(self, report: DriftReport) -> str | None:
        """POST the report's JSON if it is due; what went wrong, or None (sent, or not due)."""
        if self.url and (report.drifted or self.when == "always"):
            return post_webhook(self.url, report.as_json())
        return None
