"""Render a kustomization with real kustomize: a `kustomize` binary, else `kubectl kustomize`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

Obj = dict[str, Any]


class RenderError(RuntimeError):
    pass


def kustomize_command(path: Path) -> list[str]:
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build", str(path)]
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize", str(path)]
    pytest.fail(
        "neither `kustomize` nor `kubectl` is on PATH: install one "
        "(the kubectl package brings kustomize as `kubectl kustomize`)"
    )


def render(path: Path) -> list[Obj]:
    proc = subprocess.run(
        kustomize_command(path), capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        raise RenderError(f"kustomize failed on {path}:\n{proc.stderr}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def ident(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]
