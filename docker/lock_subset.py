"""Print the part of requirements.lock that one install of the project needs.

    python docker/lock_subset.py 'aitm[serving]' > serving/requirements.txt

The closure of the requirement's dependencies is read from the installed distributions' metadata
(the environment the lock was made from, with the project installed), markers evaluated for
this interpreter; every package in it is printed with the lock's pin, in the lock's order. A
package of the closure that the lock does not pin is an error: regenerate the lock first.
`make bento-requirements` runs this; tests/unit/test_bento_build.py holds the file to its output.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"


def closure(requirement: str) -> set[str]:
    """Canonical names of `requirement`'s distribution and everything it needs, with extras."""
    seen: set[tuple[str, str]] = set()
    names: set[str] = set()
    todo = [Requirement(requirement)]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        names.add(name)
        for extra in ["", *sorted(req.extras)]:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            try:
                declared = requires(req.name) or []
            except PackageNotFoundError as exc:
                raise SystemExit(f"{req.name} is not installed in {sys.prefix}") from exc
            for dep in map(Requirement, declared):
                # The plain pass takes the unconditional dependencies, each extra's pass its own.
                of_an_extra = dep.marker is not None and "extra" in str(dep.marker)
                if of_an_extra != bool(extra):
                    continue
                if dep.marker is None or dep.marker.evaluate({"extra": extra}):
                    todo.append(dep)
    return names


def subset(requirement: str, lock: Path = LOCK) -> list[str]:
    """The lock's lines for `requirement`'s closure, the requirement's own project left out."""
    pins = {}
    for line in lock.read_text().splitlines():
        if line.strip() and not line.startswith(("#", "-")):
            pins[canonicalize_name(Requirement(line).name)] = line.strip()
    project = canonicalize_name(Requirement(requirement).name)
    needed = closure(requirement) - {project}
    missing = sorted(needed - pins.keys())
    if missing:
        raise SystemExit(f"{lock} pins none of {missing}: regenerate the lock")
    return [line for name, line in pins.items() if name in needed]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    sys.stdout.write("".join(f"{line}\n" for line in subset(sys.argv[1])))
