"""A child process whose failure says why: its exit code and the tail of its output."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Any


def run_checked(
    cmd: Sequence[str], what: str, *, error: type[Exception] = RuntimeError, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run `cmd` capturing text output; raise `error` naming `what` if it exits non-zero."""
    done = subprocess.run(list(cmd), capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        raise error(
            f"{what} failed with code {done.returncode}:\n{done.stdout[-2000:]}\n"
            f"{done.stderr[-4000:]}"
        )
    return done
