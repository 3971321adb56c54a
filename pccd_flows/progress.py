"""The one progress bar of long work (sampling, decoding, hulls): on stderr, so results on stdout can be piped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console, ConsoleDimensions
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Where no terminal reads the output (a pipe, a file, a job log) a line is data: candidate ids, paths and printed
# commands must come out whole, not wrapped at rich's default of 80 columns.
PIPE_WIDTH = 10_000


class PipeFriendlyConsole(Console):
    """A rich console that wraps at the terminal's width, and not at all when it writes to a pipe or a file."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        # the file itself decides, not rich's is_terminal: FORCE_COLOR/TTY_COMPATIBLE in the environment or a
        # COLUMNS read when the console was made would wrap piped results at 80 columns
        isatty = getattr(self.file, "isatty", None)
        try:
            to_terminal = bool(isatty and isatty())
        except ValueError:  # a closed file
            to_terminal = False
        if not to_terminal:
            return ConsoleDimensions(PIPE_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)


stderr = PipeFriendlyConsole(stderr=True)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n=1)``."""
    columns = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=stderr, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda advance=1: progress.advance(task, advance)
