"""(b) Validate: the Great Expectations suite on both windows; the training window is the
reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from workflow.params import parse_spec

VALIDATION_SUMMARY = "validation.json"


class ValidationFailedError(RuntimeError):
    """The fetched data failed the Great Expectations suite: the pipeline stops here."""


def _index_page(results: dict[str, Any]) -> str:
    rows = "".join(
        f"<li><a href='{name}/index.html'>{name}</a>: {r.describe()}</li>"
        for name, r in results.items()
    )
    return f"<html><body><h1>AITM data validation</h1><ul>{rows}</ul></body></html>\n"


def _summary(results: dict[str, Any]) -> dict[str, Any]:
    return {
        "success": all(r.success for r in results.values()),
        "windows": {
            name: {"success": r.success, "rows": r.rows, "evaluated": r.evaluated,
                   "failed": [f.describe() for f in r.failed]}
            for name, r in results.items()
        },
    }  # fmt: skip


def validate_windows(
    train_path: str,
    eval_path: str,
    docs_dir: str,
    train_window: tuple[str, str],
    eval_window: tuple[str, str],
    dataset_yaml: str = "",
) -> dict[str, Any]:
    """Data docs go to docs_dir/{train,eval}/ with an index.html linking both, and a
    validation.json summary beside them. Raises ValidationFailedError (after writing both) if
    either window fails."""
    from features.validation import validate, validation_config

    spec = parse_spec(dataset_yaml)
    config = validation_config(spec)
    train = pd.read_parquet(train_path)
    frames = {"train": (train, train_window), "eval": (pd.read_parquet(eval_path), eval_window)}
    docs = Path(docs_dir)
    docs.mkdir(parents=True, exist_ok=True)
    results = {
        name: validate(frame, train, spec=spec, config=config,
                       window=window if spec.timestamp else None, docs_dir=docs / name,
                       raise_on_failure=False)
        for name, (frame, window) in frames.items()
    }  # fmt: skip
    (docs / "index.html").write_text(_index_page(results))
    summary = _summary(results)
    (docs / VALIDATION_SUMMARY).write_text(json.dumps(summary, indent=2))
    if not summary["success"]:
        text = "\n".join(r.describe() for r in results.values() if not r.success)
        raise ValidationFailedError(f"data validation failed, the pipeline stops here:\n{text}")
    return summary
