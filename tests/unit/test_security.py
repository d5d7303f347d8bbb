"""Security checks of the source tree: no unsafe deserialisation, no code evaluated from input,
and a secrets scan that fails on a planted secret.

The deserialisation check walks the AST of every Python file in the layers that handle data
crossing a trust boundary (artifacts, requests, configs, datasets). A call is unsafe when it
can run code chosen by whoever wrote the bytes:

- `pickle`/`cPickle`/`dill`/`joblib`/`cloudpickle` `load(s)`, `pandas.read_pickle`,
- `torch.load` without `weights_only=True`,
- `numpy.load` with `allow_pickle=True`,
- `yaml.load`/`yaml.load_all` without `Loader=SafeLoader` (or `CSafeLoader`), `yaml.unsafe_load`,
  `yaml.full_load`,
- the builtins `eval`, `exec` and `compile`.
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
LAYERS = ("src", "features", "serving", "pipelines", "components", "monitoring")
PICKLERS = {"pickle", "cPickle", "_pickle", "dill", "joblib", "cloudpickle"}
SAFE_LOADERS = {"SafeLoader", "CSafeLoader"}
EVALUATORS = {"eval", "exec", "compile"}


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
    """Local name -> the module or object it was imported as (`from pickle import load`)."""
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
    """`file:line: what` for every unsafe deserialisation or evaluation call in `source`."""
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
        unpickles = module.split(".")[0] in PICKLERS and func in {"load", "loads", "Unpickler"}
        if unpickles or func == "read_pickle":
            why = f"{full}: unpickles arbitrary objects"
        elif module == "torch" and func == "load":
            if not _is_true(_keyword(node, "weights_only")):
                why = f"{full} without weights_only=True"
        elif module in {"numpy", "np"} and func == "load":
            if _is_true(_keyword(node, "allow_pickle")):
                why = f"{full} with allow_pickle=True"
        elif module == "yaml" and func in {"unsafe_load", "unsafe_load_all", "full_load"}:
            why = f"{full}: constructs arbitrary Python objects"
        elif module == "yaml" and func in {"load", "load_all"}:
            loader = _keyword(node, "Loader")
            if loader is None and len(node.args) > 1:
                loader = node.args[1]
            if loader is None or _dotted(loader).rpartition(".")[2] not in SAFE_LOADERS:
                why = f"{full} without Loader=SafeLoader"
        elif not module and func in EVALUATORS:
            why = f"{func}(): evaluates code"
        if why:
            found.append(f"{filename}:{node.lineno}: {why}")
    return found


def python_files() -> list[Path]:
    files = []
    for layer in LAYERS:
        root = REPO_ROOT / layer
        if root.is_dir():  # monitoring/ lives on another branch until it is merged
            files += sorted(root.rglob("*.py"))
    return files


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
    "pickle": "import pickle\npickle.load(open('m.pkl', 'rb'))\n",
    "pickle from": "from pickle import loads as l\nl(b'')\n",
    "joblib": "import joblib\njoblib.load('m.joblib')\n",
    "read_pickle": "import pandas as pd\npd.read_pickle('f.pkl')\n",
    "torch default": "import torch\ntorch.load('w.pt')\n",
    "torch false": "import torch\ntorch.load('w.pt', weights_only=False)\n",
    "numpy pickle": "import numpy as np\nnp.load('a.npy', allow_pickle=True)\n",
    "yaml default": "import yaml\nyaml.load(text)\n",
    "yaml full": "import yaml\nyaml.load(text, Loader=yaml.FullLoader)\n",
    "yaml unsafe": "import yaml\nyaml.unsafe_load(text)\n",
    "eval": "eval(request_body)\n",
    "exec": "exec(config_text)\n",
}
SAFE = (
    "import torch, yaml, numpy as np, json\n"
    "torch.load('w.pt', map_location='cpu', weights_only=True)\n"
    "yaml.safe_load(text)\n"
    "yaml.load(text, Loader=yaml.SafeLoader)\n"
    "yaml.load(text, yaml.CSafeLoader)\n"
    "np.load('a.npy')\n"
    "json.loads(text)\n"
    "model.eval()\n"
)


@pytest.mark.parametrize("case", list(UNSAFE))
def test_the_check_flags_each_unsafe_call(case):
    assert len(unsafe_calls(UNSAFE[case])) == 1


def test_the_check_passes_the_safe_forms():
    assert unsafe_calls(SAFE) == []


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
