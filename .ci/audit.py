"""Dependency audit of requirements.lock with pip-audit (`make audit`).

Fails on any known vulnerability. Skips, with the reason, when pip-audit could not reach a
vulnerability database or could audit none of the pinned packages: some networks answer
pypi.org's project pages but not the per-release JSON pip-audit reads
(https://pypi.org/pypi/NAME/VERSION/json), and then every package comes back "not found on
PyPI". Such a run proves nothing either way, so it must not read as a pass.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"


def main() -> int:
    command = [
        sys.executable, "-m", "pip_audit", "--requirement", str(LOCK), "--no-deps",
        "--disable-pip", "--progress-spinner", "off", "--format", "json",
        *sys.argv[1:],  # e.g. --vulnerability-service osv
    ]  # fmt: skip
    # pip-audit on our own lock file, as an argument list (no shell).
    done = subprocess.run(command, capture_output=True, text=True, timeout=1_800, check=False)  # noqa: S603
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"audit SKIPPED: pip-audit could not reach its vulnerability database: {error}")
        return 0
    deps = report["dependencies"]
    skipped = [d for d in deps if "skip_reason" in d]
    audited = len(deps) - len(skipped)
    vulnerable = [d for d in deps if d.get("vulns")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "none"
            print(f"VULNERABLE {dep['name']}=={dep['version']}: {vuln['id']} (fixed in {fixes})")
    if vulnerable:
        print(f"audit FAILED: {len(vulnerable)} of {audited} audited packages are vulnerable")
        return 1
    if audited == 0:
        print(
            f"audit SKIPPED: none of the {len(deps)} pinned packages could be audited; "
            f"pip-audit says, e.g.: {skipped[0]['skip_reason'] if skipped else 'nothing'}"
        )
        return 0
    print(f"audit passed: no known vulnerabilities in {audited} packages ({len(skipped)} skipped)")
    for dep in skipped:
        print(f"  skipped {dep['name']}: {dep['skip_reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
