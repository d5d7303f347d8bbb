"""(b) Validate: the Great Expectations suite on both windows; the training window is the
reference.

The data docs are ONE self-contained HTML page (inline style, no links, no scripts): the KFP UI
renders an HTML artifact only when it is a single file, and Great Expectations' own data docs are
a folder of pages and assets."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from workflow.params import parse_spec

VALIDATION_SUMMARY = "validation.json"

_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
    "margin:.5em 0 1.5em}td,th{border:1px solid #bbb;padding:.3em .6em;text-align:left;"
    "vertical-align:top}th{background:#eee}.pass{color:#1a7f37}.fail{color:#cf222e}"
)


class ValidationFailedError(RuntimeError):
    """The fetched data failed the Great Expectations suite: the pipeline stops here."""


def _status(success: bool) -> str:
    return "<b class='pass'>passed</b>" if success else "<b class='fail'>FAILED</b>"


def _failures_table(failed: list[Any]) -> str:
    if not failed:
        return "<p>No expectation failed.</p>"
    head = ("<tr><th>check</th><th>expectation</th><th>column</th><th>unexpected rows</th>"
            "<th>examples</th><th>observed</th><th>error</th></tr>")  # fmt: skip
    rows = []
    for f in failed:
        share = "" if f.unexpected_percent is None else f" ({f.unexpected_percent:.2f}%)"
        count = "" if f.unexpected_count is None else f"{f.unexpected_count}{share}"
        cells = [f.check or "", f.expectation, f.column or "", count,
                 ", ".join(map(str, f.examples)), "" if f.observed is None else str(f.observed),
                 (f.error or "").strip()[-300:]]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def render_page(results: dict[str, Any], windows: dict[str, tuple[str, str] | None]) -> str:
    """The validation of every window as one HTML page."""
    success = all(r.success for r in results.values())
    parts = [f"<h1>AITM data validation: {_status(success)}</h1>",
             "<table><tr><th>window</th><th>from</th><th>to</th><th>rows</th>"
             "<th>expectations</th><th>failed</th><th>status</th></tr>"]  # fmt: skip
    for name, r in results.items():
        start, end = windows[name] or ("", "")
        cells = [name, start, end, f"{r.rows:,}", str(r.evaluated), str(len(r.failed))]
        parts.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells)
                     + f"<td>{_status(r.success)}</td></tr>")  # fmt: skip
    parts.append("</table>")
    for name, r in results.items():
        parts += [f"<h2>{escape(name)} window</h2>", _failures_table(list(r.failed))]
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>AITM data validation"
            f"</title><style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")  # fmt: skip


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
    docs_file: str,
    train_window: tuple[str, str],
    eval_window: tuple[str, str],
    dataset_yaml: str = "",
    summary_file: str = "",
) -> dict[str, Any]:
    """The data docs go to `docs_file` (one HTML page), the summary to `summary_file` (JSON,
    if given). Raises ValidationFailedError (after writing both) if either window fails."""
    from features.validation import validate, validation_config

    spec = parse_spec(dataset_yaml)
    config = validation_config(spec)
    train = pd.read_parquet(train_path)
    windows = {"train": train_window, "eval": eval_window} if spec.timestamp else \
        {"train": None, "eval": None}  # fmt: skip
    frames = {"train": train, "eval": pd.read_parquet(eval_path)}
    results = {
        name: validate(frame, train, spec=spec, config=config, window=windows[name],
                       raise_on_failure=False)
        for name, frame in frames.items()
    }  # fmt: skip
    Path(docs_file).parent.mkdir(parents=True, exist_ok=True)
    Path(docs_file).write_text(render_page(results, windows))
    summary = _summary(results)
    if summary_file:
        Path(summary_file).parent.mkdir(parents=True, exist_ok=True)
        Path(summary_file).write_text(json.dumps(summary, indent=2))
    if not summary["success"]:
        text = "\n".join(r.describe() for r in results.values() if not r.success)
        raise ValidationFailedError(f"data validation failed, the pipeline stops here:\n{text}")
    return summary
