"""Errors raised by the client."""

from __future__ import annotations

from typing import Any, Optional


class KilnError(Exception):
    """A request the server refused: ``status`` (HTTP), ``type`` and ``detail`` of its problem document."""

    def __init__(self, status: int, detail: str, type: Optional[str] = None) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.type = type


class JobFailed(Exception):
    """A job ended ``failed`` or ``cancelled``; ``status`` says which, ``error`` why."""

    def __init__(self, job_id: str, status: str, error: Optional[str]) -> None:
        super().__init__(f"job {job_id} {status}: {error or 'no reason given'}")
        self.job_id = job_id
        self.status = status
        self.error = error


def raise_for_problem(response: Any) -> None:
    """Raises :class:`KilnError` for an error answer (problem+json, or anything else)."""
    if response.status_code < 400:
        return
    detail = response.reason_phrase or "error"
    kind = None
    try:
        problem = response.json()
        detail = problem.get("detail", detail)
        kind = problem.get("type")
    except Exception:  # noqa: BLE001 - not JSON: keep the status line
        pass
    raise KilnError(response.status_code, detail, kind)
