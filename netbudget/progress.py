"""One Rich progress bar for long loops (training epochs, search trials); a no-op when disabled."""

from __future__ import annotations

from typing import Any, Self


class ProgressBar:
    """``label [bar] done/total description time`` on the console; does nothing when ``enabled`` is false.

    ``remaining=True`` shows the estimated time left (steady loops), otherwise the time elapsed.
    """

    def __init__(self, label: str, total: int, *, enabled: bool = True, done: int = 0, console: Any = None,
                 remaining: bool = True) -> None:
        self.label, self.total, self.enabled, self.done = label, total, enabled, done
        self.console, self.remaining = console, remaining
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Self:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            clock = TimeRemainingColumn() if self.remaining else TimeElapsedColumn()
            self._progress = Progress(TextColumn(f"[bold]{self.label}[/]"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.description}"), clock, console=self.console, transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task("", total=self.total, completed=self.done)
        return self

    def advance(self, description: str) -> None:
        """One more item done; ``description`` replaces the text after the count."""
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=description)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
