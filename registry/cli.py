"""`python -m registry`: show the promoted model, its history, roll back.

Exit 2 on bad input (nothing promoted, nothing to roll back to, a missing model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aitm.cli import command_app, fail

app = command_app("The model registry: promoted model, history, rollback.")

HomeOption = Annotated[
    Path | None, typer.Option(help="BentoML home of the registry (default $BENTOML_HOME).")
]
NameOption = Annotated[
    str | None, typer.Option(help="Model name (default: the dataset spec's, $AITM_DATASET).")
]


def _where(home: Path | None, name: str | None) -> tuple[Path, str]:
    from aitm.dataset import SpecError, load_spec
    from registry.store import default_home

    try:
        return home or default_home(), name or load_spec().model_name
    except SpecError as exc:
        fail(str(exc))


@app.command("show")
def show_command(home: HomeOption = None, name: NameOption = None) -> None:
    """The promoted pointer's record."""
    from aitm.checkpoint import ArtifactError
    from registry.store import promoted

    home, name = _where(home, name)
    try:
        current = promoted(home, name)
    except ArtifactError as exc:
        fail(str(exc))
    if current is None:
        fail(f"nothing is promoted as '{name}' under {home}")
    typer.echo(json.dumps(current.info, indent=2, default=str))


@app.command("history")
def history_command(home: HomeOption = None, name: NameOption = None) -> None:
    """Every promote and rollback, oldest first: id, when, action, tag, what it replaced."""
    from registry.store import history

    home, name = _where(home, name)
    for record in history(home, name):
        typer.echo(f"{record['id']:>4}  {record['promoted_at']}  {record['action']:<8}  "
                   f"{record['tag']}  (replaced {record['replaced_tag'] or '-'})")  # fmt: skip


@app.command("rollback")
def rollback_command(home: HomeOption = None, name: NameOption = None) -> None:
    """Point the model back at the one the current pointer replaced. A running service that
    follows the pointer (AITM_MODEL_TAG unset) loads, checks and swaps it in within its poll
    interval (AITM_MODEL_POLL_SECONDS); one pinned to a version picks it up when restarted."""
    from aitm.checkpoint import ArtifactError
    from registry.store import RegistryError, rollback

    home, name = _where(home, name)
    try:
        record = rollback(home, name)
    except (RegistryError, ArtifactError) as exc:
        fail(str(exc))
    typer.echo(f"{name}: {record['replaced_tag']} -> {record['tag']}")


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="python -m registry")
