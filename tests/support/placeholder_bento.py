"""A one-route bento for pipeline tests: packaging builds it fast, without the real service."""

from __future__ import annotations

from pathlib import Path

SERVICE = """import bentoml


@bentoml.service
class Placeholder:
    @bentoml.api
    def ping(self) -> str:
        return "ok"
"""
BENTOFILE = """service: "service:Placeholder"
include: ["service.py"]
python:
  lock_packages: false
"""


def write_placeholder_bento(folder: Path) -> Path:
    """service.py and bentofile.yaml in `folder` (created); the bentofile's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "service.py").write_text(SERVICE)
    bentofile = folder / "bentofile.yaml"
    bentofile.write_text(BENTOFILE)
    return bentofile
