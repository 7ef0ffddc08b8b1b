"""A rich progress bar for training epochs: epoch, training loss and validation AUC."""

from types import TracebackType

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


class EpochProgress:
    """Context manager; a no-op when disabled (tests, library use)."""

    def __init__(self, epochs: int, *, enabled: bool) -> None:
        self.epochs = epochs
        self._progress: Progress | None = None
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]training"),
                BarColumn(),
                TextColumn("epoch {task.completed}/{task.total}"),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("val AUC {task.fields[auc]}"),
                TimeElapsedColumn(),
            )
            self._task = self._progress.add_task("train", total=epochs, loss="-", auc="-")

    def __enter__(self) -> "EpochProgress":
        if self._progress is not None:
            self._progress.start()
        return self

    def update(self, epoch: int, loss: float, auc: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=epoch, loss=f"{loss:.4f}", auc=f"{auc:.4f}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
