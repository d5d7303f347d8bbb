"""Security checks of the source tree: no unsafe deserialisation, no code evaluated from input,
and a secrets scan that fails on a planted secret.

ruff's bandit rules (`S`, on for the whole tree in pyproject.toml) flag `pickle`/`dill` loads,
`pandas.read_pickle`, `yaml.load` without a safe loader, `eval` and `exec`; a test below holds
that they still fire on project code. The AST check here covers the unsafe loads bandit does not
know, in every layer that handles data crossing a trust boundary (artifacts, requests, configs,
datasets): a call is unsafe when it can run code chosen by whoever wrote the bytes:

- `joblib`/`cloudpickle` `load(s)`,
- `torch.load` without `weights_only=True`,
- `numpy.load` with `allow_pickle=True`,
- `yaml.unsafe_load`, `yaml.full_load` (and their `_all` forms),
- the builtin `compile`.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYERS = (
    "src", "features", "registry", "workflow", "serving", "pipelines", "components", "monitoring"
)  # fmt: skip
PICKLERS = {"joblib", "cloudpickle"}
UNSAFE_YAML = {"unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}


def _dotted(node: ast.AST) -> str:
    """`a.b.c` for a Name/Attribute chain, "" for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the module or object it was imported as (`from joblib import load`)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def unsafe_calls(source: str, filename: str = "<source>") -> list[str]:
    """`file:line: what` for every unsafe load in `source` that ruff's S rules do not flag."""
    tree = ast.parse(source, filename=filename)
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if not name:
            continue
        head, _, rest = name.partition(".")
        full = f"{aliases.get(head, head)}.{rest}" if rest else aliases.get(head, head)
        module, _, func = full.rpartition(".")
        why = None
        if module.split(".")[0] in PICKLERS and func in {"load", "loads"}:
            why = f"{full}: unpickles arbitrary objects"
        elif module == "torch" and func == "load":
            if not _is_true(_keyword(node, "weights_only")):
                why = f"{full} without weights_only=True"
        elif module in {"numpy", "np"} and func == "load":
            if _is_true(_keyword(node, "allow_pickle")):
                why = f"{full} with allow_pickle=True"
        elif module == "yaml" and func in UNSAFE_YAML:
            why = f"{full}: constructs arbitrary Python objects"
        elif not module and func == "compile":
            why = "compile(): evaluates code"
        if why:
            found.append(f"{filename}:{node.lineno}: {why}")
    return found


def python_files() -> list[Path]:
    return [path for layer in LAYERS for path in sorted((REPO_ROOT / layer).rglob("*.py"))]


def test_no_code_path_deserialises_or_evaluates_untrusted_input():
    files = python_files()
    assert len(files) > 20, f"expected the project's sources, found {len(files)} files"
    found = [hit for path in files for hit in unsafe_calls(path.read_text(), str(path))]
    assert found == []


def test_model_weights_are_loaded_weights_only():
    """The one torch.load in the tree exists and passes weights_only=True."""
    calls = [
        line
        for path in python_files()
        for line in path.read_text().splitlines()
        if "torch.load(" in line
    ]
    assert calls and all("weights_only=True" in line for line in calls), calls


UNSAFE = {
    "joblib": "import joblib\njoblib.load('m.joblib')\n",
    "joblib from": "from joblib import load as l\nl('m.joblib')\n",
    "cloudpickle": "import cloudpickle\ncloudpickle.loads(b'')\n",
    "torch default": "import torch\ntorch.load('w.pt')\n",
    "torch false": "import torch\ntorch.load('w.pt', weights_only=False)\n",
    "numpy pickle": "import numpy as np\nnp.load('a.npy', allow_pickle=True)\n",
    "yaml unsafe": "import yaml\nyaml.unsafe_load(text)\n",
    "yaml full": "import yaml\nyaml.full_load(text)\n",
    "compile": "compile(source, 'f', 'exec')\n",
}
SAFE = (
    "import torch, yaml, numpy as np, json\n"
    "torch.load('w.pt', map_location='cpu', weights_only=True)\n"
    "yaml.safe_load(text)\n"
    "np.load('a.npy')\n"
    "json.loads(text)\n"
    "model.eval()\n"
)


@pytest.mark.parametrize("case", list(UNSAFE))
def test_the_check_flags_each_unsafe_call(case):
    assert len(unsafe_calls(UNSAFE[case])) == 1


def test_the_check_passes_the_safe_forms():
    assert unsafe_calls(SAFE) == []


# What ruff's S rules catch, with the project's configuration, in a file of the core.
RUFF_FLAGS = {
    "pickle": ("import pickle\npickle.load(open('m.pkl', 'rb'))\n", "S301"),
    "pickle from": ("from pickle import loads as l\nl(b'')\n", "S301"),
    "dill": ("import dill\ndill.loads(b'')\n", "S301"),
    "read_pickle": ("import pandas as pd\npd.read_pickle('f.pkl')\n", "S301"),
    "yaml default": ("import yaml\nyaml.load(text)\n", "S506"),
    "yaml full loader": ("import yaml\nyaml.load(text, Loader=yaml.FullLoader)\n", "S506"),
    "eval": ("eval(request_body)\n", "S307"),
    "exec": ("exec(config_text)\n", "S102"),
    "shell": ("import subprocess\nsubprocess.run(cmd, shell=True)\n", "S602"),
}


def _ruff_codes(source: str, as_file: str) -> list[str]:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.fail("ruff is not installed: it is in the dev extra (`make install`)")
    done = subprocess.run(
        [ruff, "check", "--no-cache", "--output-format", "json", "--exit-zero",
         "--stdin-filename", as_file, "-"],
        input=source, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [finding["code"] for finding in json.loads(done.stdout)]


@pytest.mark.parametrize("case", list(RUFF_FLAGS))
def test_ruff_flags_each_unsafe_call_in_project_code(case):
    source, code = RUFF_FLAGS[case]
    assert code in _ruff_codes(source, "src/aitm/unsafe_example.py")


def test_ruff_passes_the_safe_forms():
    safe = "import yaml\n\n\ndef read(text):\n    return yaml.load(text, Loader=yaml.SafeLoader)\n"
    assert not [c for c in _ruff_codes(safe, "src/aitm/safe_example.py") if c.startswith("S")]


# ---------------------------------------------------------------------------------------------
# Secrets scan (detect-secrets; `make secret-scan` runs it on every tracked file)

BASELINE = REPO_ROOT / ".secrets.baseline"


def _hook() -> str:
    hook = shutil.which("detect-secrets-hook", path=str(Path(sys.executable).parent))
    if hook is None:
        pytest.fail("detect-secrets is not installed: it is in the dev extra (`make install`)")
    return hook


def test_the_baseline_allows_no_secret():
    """The committed baseline records no finding: nothing secret-looking is waved through."""
    baseline = json.loads(BASELINE.read_text())
    assert baseline["results"] == {}
    assert {p["name"] for p in baseline["plugins_used"]} >= {
        "AWSKeyDetector",
        "PrivateKeyDetector",
        "KeywordDetector",
        "Base64HighEntropyString",
    }


def test_the_secrets_scan_fails_on_a_planted_secret(tmp_path):
    planted = tmp_path / "settings.py"
    # Built at run time so that this file itself holds no secret-looking string.
    key_id = "AKIA" + "IOSFODNN7" + "EXAMPLE"
    planted.write_text(f'AWS_ACCESS_KEY_ID = "{key_id}"\n')
    clean = tmp_path / "clean.py"
    clean.write_text('NAME = "aitm"\n')
    baseline = tmp_path / "baseline.json"
    shutil.copy(BASELINE, baseline)

    def scan(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [_hook(), "--baseline", str(baseline), str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert scan(clean).returncode == 0
    caught = scan(planted)
    assert caught.returncode != 0
    assert "AWS Access Key" in caught.stdout + caught.stderr


# ---------------------------------------------------------------------------------------------
# Dependency audit (`make audit`: .ci/audit.py around pip-audit)


def _audit_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ci_audit", REPO_ROOT / ".ci" / "audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pip_audit_says(monkeypatch, stdout: str, stderr: str = ""):
    audit = _audit_module()
    done = subprocess.CompletedProcess(args=[], returncode=1, stdout=stdout, stderr=stderr)
    monkeypatch.setattr(audit.subprocess, "run", lambda *a, **k: done)
    monkeypatch.setattr(audit.sys, "argv", ["audit.py"])
    return audit.main


def _report(*deps) -> str:
    return json.dumps({"dependencies": list(deps), "fixes": []})


def test_audit_fails_on_a_known_vulnerability(monkeypatch, capsys):
    main = _pip_audit_says(
        monkeypatch,
        _report(
            {
                "name": "jinja2",
                "version": "3.1.2",
                "vulns": [{"id": "GHSA-x", "fix_versions": ["3.1.3"]}],
            },
            {"name": "numpy", "version": "2.4.6", "vulns": []},
        ),
    )
    assert main() == 1
    assert "VULNERABLE jinja2==3.1.2: GHSA-x (fixed in 3.1.3)" in capsys.readouterr().out


def test_audit_passes_only_what_it_audited(monkeypatch, capsys):
    main = _pip_audit_says(
        monkeypatch,
        _report(
            {"name": "numpy", "version": "2.4.6", "vulns": []},
            {"name": "torch", "version": "2.13.0+cpu", "skip_reason": "not on PyPI"},
        ),
    )
    assert main() == 0
    assert "no known vulnerabilities in 1 packages (1 skipped)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "stdout, stderr",
    [
        (_report({"name": "a2wsgi", "version": "1.10.10", "skip_reason": "not found on PyPI"}), ""),
        ("", "requests.exceptions.ConnectionError: Failed to resolve 'api.osv.dev'"),
    ],
    ids=["nothing audited", "no database"],
)
def test_audit_skips_loudly_when_it_could_audit_nothing(monkeypatch, capsys, stdout, stderr):
    main = _pip_audit_says(monkeypatch, stdout, stderr)
    assert main() == 0
    out = capsys.readouterr().out
    assert out.startswith("audit SKIPPED:") and "passed" not in out
