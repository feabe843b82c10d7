"""Server-Sent Events: parsing ``text/event-stream`` lines into events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, List, Optional


@dataclass
class Event:
    """One event of a job's stream."""

    id: int
    event: str
    data: Any


@dataclass
class _Pending:
    id: Optional[int] = None
    event: str = "message"
    data: List[str] = field(default_factory=list)


class EventParser:
    """Feeds lines, yields complete events (heartbeat comments are skipped)."""

    def __init__(self) -> None:
        self._pending = _Pending()

    def feed(self, line: str) -> Optional[Event]:
        """Takes one line (without its newline); returns an event when a blank line ends one."""
        if line == "":
            pending, self._pending = self._pending, _Pending()
            if not pending.data:
                return None
            return Event(pending.id or 0, pending.event, json.loads("\n".join(pending.data)))
        if line.startswith(":"):
            return None
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "data":
            self._pending.data.append(value)
        elif key == "id":
            self._pending.id = int(value)
        elif key == "event":
            self._pending.event = value
        return None


def parse_lines(lines: Iterable[str]) -> Iterator[Event]:
    """The events of a stream of lines."""
    parser = EventParser()
    for line in lines:
        event = parser.feed(line.rstrip("\r"))
        if event is not None:
            yield event


FINAL = ("completed", "failed", "cancelled")


def is_final(event: Event) -> bool:
    """Whether the event is the job's final status."""
    return event.event == "status" and isinstance(event.data, dict) and event.data.get("status") in FINAL


def describe(event: Event) -> Optional[str]:
    """A one-line description for ``attach()``, or None for events not worth a line."""
    data = event.data if isinstance(event.data, dict) else {}
    if event.event == "progress" and "epoch" in data:
        return (
            f"epoch {data['epoch']}/{data.get('epochs')} step {data.get('step')}/{data.get('totalSteps')} "
            f"loss {data.get('loss', float('nan')):.4f} {data.get('samplesPerSec', 0):.0f} samples/s"
        )
    if event.event == "progress":
        return f"{data.get('rowsDone')}/{data.get('rows')} rows"
    if event.event == "evaluated":
        metrics = data.get("metrics", {})
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()) if k.startswith("val_"))
        return f"epoch {data.get('epoch')}: {shown}"
    if event.event == "status":
        line = f"status: {data.get('status')}"
        return line + (f" ({data['error']})" if data.get("error") else "")
    if event.event == "warning":
        return f"warning: {data.get('message')}"
    if event.event == "interrupted":
        return f"interrupted: {data.get('reason')}"
    return None
