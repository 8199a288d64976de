"""User-facing errors: the CLI prints them as one line and exits with code 2 (no traceback unless --debug)."""

import sys


class PonderError(Exception):
    """A problem with the user's input (file, option, model directory), not a bug in ponder."""


class DataError(PonderError):
    """Bad reasoning data; the message always names the file and, where there is one, the line."""

    def __init__(self, path, line: int | None, problem: str):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


def run_script(main) -> None:
    """A benchmark script's entry point: bad input ends as the CLI's does, one line on stderr and exit code 2."""
    try:
        main()
    except PonderError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
