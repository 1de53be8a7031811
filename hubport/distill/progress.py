"""A rich progress bar for distillation: steps, the running loss and token agreement with the teacher."""

from __future__ import annotations

from typing import Self


class StepBar:
    """Context manager around rich.progress; does nothing when disabled (tests, non-main processes)."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self._progress, self._task = None, None

    def __enter__(self) -> Self:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("distilling"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("loss {task.fields[loss]:.4f}  agreement {task.fields[agree]:.3f}"),
                                      TimeRemainingColumn(), transient=False)
            self._progress.__enter__()
            self._task = self._progress.add_task("distill", total=self.total, loss=float("nan"), agree=0.0)
        return self

    def update(self, step: int, loss: float, agreement: float) -> None:
        """Show step+1 done, the batch's loss and the share of its target tokens where the argmaxes agree."""
        if self._progress is not None:
            self._progress.update(self._task, completed=step + 1, loss=loss, agree=agreement)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
