"""The Progress protocol: how long work reports itself without knowing about terminals."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives progress of one long task; implementations must be cheap to call."""

    def start(self, description: str, total: int | None = None) -> None:
        """Begin a task of `total` units (None when unknown)."""

    def advance(self, amount: int = 1) -> None:
        """Record `amount` more units done."""

    def finish(self) -> None:
        """End the current task."""


class _Silent:
    def start(self, description: str, total: int | None = None) -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass


SILENT: Progress = _Silent()
