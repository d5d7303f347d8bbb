"""Execute a compiled KFP pipeline (IR YAML) task by task, the way the KFP launcher does on a
cluster, to catch what kfp's local runner cannot: tasks that share host paths.

For each task in DAG order (skipping those whose `triggerPolicy.condition` is false), the runner
builds the executor input JSON (`inputs.parameterValues`, `inputs.artifacts` with their uri,
`outputs.artifacts`, `outputs.parameters[].outputFile`, `outputs.outputFile`), resolves the
container's `command` + `args` from `deploymentSpec.executors` with kfp.local's own placeholder
code, and runs them in a FRESH working directory, HOME and TMPDIR. Between tasks travels only:

- the IR's artifacts: each input is COPIED into the consuming task's own folder (as the launcher
  downloads it from object storage), with the producer's metadata;
- the volumes the kfp-kubernetes platform spec mounts (`platforms.kubernetes...pvcMount`): one
  host folder per PVC, shared by the tasks that mount it.

A pod's filesystem is simulated by rewriting absolute paths in parameter values: a path under a
mount of THIS task goes to that PVC's folder, a path under the image root (/app) to the repo (the
image holds the project), and any other absolute path into the task's own empty `rootfs/` (a
pod sees nothing another pod wrote there). This rewrites parameter values only: a path a task
finds inside a file or builds itself is not rewritten, and nothing stops a task from reading the
host filesystem directly (no chroot). Resources, retries and caching are not simulated.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE_ROOT = "/app"  # where docker/Dockerfile puts the project
SCHEDULE_PLACEHOLDER = "{{$.pipeline_job_schedule_time_utc}}"
# Artifacts whose content is their metadata (kfp's executor writes no file for them).
METADATA_ONLY = {
    "system.Metrics",
    "system.ClassificationMetrics",
    "system.SlicedClassificationMetrics",
}
_CONDITION = re.compile(r"^inputs\.parameter_values\['([^']+)'\]\s*(==|!=)\s*(.+)$")


class PipelineSpecError(ValueError):
    """The IR uses something this runner does not implement: fail loudly, never guess."""


@dataclass
class Artifact:
    path: Path
    schema_title: str
    schema_version: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskRun:
    name: str
    state: str  # "succeeded", "failed" or "skipped"
    folder: Path | None = None
    parameters: dict[str, Any] = field(default_factory=dict)  # the inputs, as the task saw them
    outputs: dict[str, Any] = field(default_factory=dict)  # output parameters
    artifacts: dict[str, Artifact] = field(default_factory=dict)  # output artifacts
    log: str = ""
    mounts: dict[str, str] = field(default_factory=dict)  # mount path -> PVC name


@dataclass
class PipelineRun:
    tasks: dict[str, TaskRun]
    volumes: dict[str, Path]

    @property
    def failed(self) -> TaskRun | None:
        return next((t for t in self.tasks.values() if t.state == "failed"), None)

    @property
    def succeeded(self) -> bool:
        return self.failed is None

    def describe(self) -> str:
        lines = [f"{name}: {t.state}" for name, t in self.tasks.items()]
        if self.failed is not None:
            lines.append(f"--- {self.failed.name} log (tail) ---\n{self.failed.log[-4000:]}")
        return "\n".join(lines)


def load_package(package: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pipeline spec, kubernetes platform spec) of a compiled YAML package."""
    docs = [d for d in yaml.safe_load_all(Path(package).read_text()) if d]
    spec, platform = docs[0], {}
    for doc in docs[1:]:
        platform = doc.get("platforms", {}).get("kubernetes", platform)
    return spec, platform


def strip_platform(package: str | Path, out: str | Path) -> Path:
    """A copy of the package without its platform spec (no volumes): what a pipeline compiled
    without kfp-kubernetes would be."""
    spec, _ = load_package(package)
    Path(out).write_text(yaml.safe_dump(spec, sort_keys=True))
    return Path(out)


def _condition_holds(condition: str, parameters: dict[str, Any]) -> bool:
    match = _CONDITION.match(condition.strip())
    if match is None:
        raise PipelineSpecError(f"condition not supported by this runner: {condition!r}")
    name, op, literal = match.groups()
    literal = literal.strip()
    expected = literal[1:-1] if literal[:1] == literal[-1:] == "'" else json.loads(literal)
    if name not in parameters:
        raise PipelineSpecError(f"condition on an unknown input {name!r}")
    return (parameters[name] == expected) == (op == "==")


def _runtime_artifact(name: str, path: Path, kind: dict[str, str], metadata: dict[str, Any]):
    """A RuntimeArtifact as JSON: a local uri is its own path to kfp's executor."""
    return {"name": name, "uri": str(path), "metadata": dict(metadata), "type": kind}


class _Executor:
    def __init__(self, spec: dict[str, Any], platform: dict[str, Any], work: Path,
                 volumes: dict[str, Path], schedule_time: str, timeout: float) -> None:  # fmt: skip
        self.spec, self.work, self.volumes = spec, work, volumes
        self.mounts = platform.get("deploymentSpec", {}).get("executors", {})
        self.executors = spec["deploymentSpec"]["executors"]
        self.schedule_time, self.timeout = schedule_time, timeout
        self.job_name = f"{spec['pipelineInfo']['name']}-{uuid.uuid4().hex[:8]}"
        self.job_id = str(uuid.uuid4())
        self.runs: dict[str, TaskRun] = {}

    # -- values and paths ---------------------------------------------------------------

    def _constant(self, value: Any) -> Any:
        if isinstance(value, str):
            value = value.replace(SCHEDULE_PLACEHOLDER, self.schedule_time)
            value = value.replace("{{$.pipeline_job_name}}", self.job_name)
            value = value.replace("{{$.pipeline_job_id}}", self.job_id)
        return value

    def _pod_path(self, value: Any, mounts: dict[str, str], rootfs: Path) -> Any:
        """An absolute path as the task's pod would see it (see the module docstring)."""
        if not isinstance(value, str) or not value.startswith("/") or "\n" in value:
            return value
        for mount, pvc in sorted(mounts.items(), key=lambda m: -len(m[0])):
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return str(self.volumes[pvc]) + value[len(mount.rstrip("/")) :]
        if value == IMAGE_ROOT or value.startswith(IMAGE_ROOT + "/"):
            return str(REPO_ROOT) + value[len(IMAGE_ROOT) :]
        return str(rootfs) + value

    def _task_mounts(self, executor_label: str) -> dict[str, str]:
        mounts = {}
        for mount in self.mounts.get(executor_label, {}).get("pvcMount", []):
            name = mount.get("constant") or mount.get("pvcNameParameter", {}).get(
                "runtimeValue", {}
            ).get("constant")
            if not name:
                raise PipelineSpecError(f"a PVC name this runner cannot resolve: {mount}")
            self.volumes.setdefault(name, self.work / "volumes" / name).mkdir(
                parents=True, exist_ok=True
            )
            mounts[mount["mountPath"]] = name
        return mounts

    # -- the DAG ------------------------------------------------------------------------

    def run_dag(self, dag: dict[str, Any], parameters: dict[str, Any],
                artifacts: dict[str, Artifact]) -> None:  # fmt: skip
        tasks, done = dag["tasks"], {}
        while len(done) < len(tasks):
            ready = sorted(n for n, t in tasks.items() if n not in done
                           and all(d in done for d in t.get("dependentTasks", [])))  # fmt: skip
            if not ready:
                raise PipelineSpecError(f"a cycle among {sorted(set(tasks) - set(done))}")
            for name in ready:
                done[name] = self._run_task(name, tasks[name], parameters, artifacts, done)
                if done[name].state == "failed":
                    return  # the pipeline stops at the first failed task, like KFP's default

    def _inputs(self, task: dict[str, Any], parameters: dict[str, Any],
                artifacts: dict[str, Artifact], done: dict[str, TaskRun]):  # fmt: skip
        params, arts = {}, {}
        for key, ref in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in ref:
                params[key] = parameters[ref["componentInputParameter"]]
            elif "taskOutputParameter" in ref:
                out = ref["taskOutputParameter"]
                params[key] = done[out["producerTask"]].outputs[out["outputParameterKey"]]
            elif "runtimeValue" in ref:
                params[key] = self._constant(ref["runtimeValue"]["constant"])
            else:
                raise PipelineSpecError(f"input parameter {key!r}: {ref} is not supported")
        for key, ref in task.get("inputs", {}).get("artifacts", {}).items():
            if "componentInputArtifact" in ref:
                arts[key] = artifacts[ref["componentInputArtifact"]]
            elif "taskOutputArtifact" in ref:
                out = ref["taskOutputArtifact"]
                arts[key] = done[out["producerTask"]].artifacts[out["outputArtifactKey"]]
            else:
                raise PipelineSpecError(f"input artifact {key!r}: {ref} is not supported")
        return params, arts

    def _run_task(self, name: str, task: dict[str, Any], parameters: dict[str, Any],
                  artifacts: dict[str, Artifact], done: dict[str, TaskRun]) -> TaskRun:  # fmt: skip
        component = self.spec["components"][task["componentRef"]["name"]]
        if any(done[d].state == "skipped" for d in task.get("dependentTasks", [])):
            return self._skip(name, task)
        params, arts = self._inputs(task, parameters, artifacts, done)
        condition = task.get("triggerPolicy", {}).get("condition")
        if condition and not _condition_holds(condition, params):
            return self._skip(name, task)
        if "dag" in component:
            self.run_dag(component["dag"], params, arts)
            failed = any(r.state == "failed" for r in self.runs.values())
            return self._record(TaskRun(name, "failed" if failed else "succeeded"))
        return self._record(self._run_container(name, component, params, arts))

    def _skip(self, name: str, task: dict[str, Any]) -> TaskRun:
        """A task not run, and every task of its sub-DAG."""
        component = self.spec["components"][task["componentRef"]["name"]]
        for inner, spec in component.get("dag", {}).get("tasks", {}).items():
            self._skip(inner, spec)
        return self._record(TaskRun(name, "skipped"))

    def _record(self, run: TaskRun) -> TaskRun:
        self.runs[run.name] = run
        return run

    # -- one container ------------------------------------------------------------------

    def _run_container(self, name: str, component: dict[str, Any], params: dict[str, Any],
                       arts: dict[str, Artifact]) -> TaskRun:  # fmt: skip
        from kfp.local import placeholder_utils

        label = component["executorLabel"]
        container = self.executors[label]["container"]
        folder = self.work / "tasks" / name
        if folder.exists():
            raise PipelineSpecError(f"task {name!r} ran twice")
        home, cwd, tmp, rootfs, inputs, outputs = (
            folder / p for p in ("home", "cwd", "tmp", "rootfs", "inputs", "outputs")
        )
        for path in (home, cwd, tmp, rootfs, inputs, outputs):
            path.mkdir(parents=True)
        mounts = self._task_mounts(label)
        definitions = component.get("inputDefinitions", {}).get("parameters", {})
        values = {}
        for key, definition in definitions.items():
            if key in params:
                value = params[key]
            elif "defaultValue" in definition:
                value = definition["defaultValue"]
            elif definition.get("isOptional"):
                continue
            else:
                raise PipelineSpecError(f"task {name!r}: no value for input {key!r}")
            if definition.get("parameterType") == "NUMBER_INTEGER":
                value = int(value)
            values[key] = self._pod_path(value, mounts, rootfs)
        in_artifacts = {}
        for key, art in arts.items():  # downloaded into the task's own folder
            copy = inputs / key
            if art.path.is_dir():
                shutil.copytree(art.path, copy)
            else:
                shutil.copy2(art.path, copy)
            kind = {"schemaTitle": art.schema_title, "schemaVersion": art.schema_version}
            runtime = _runtime_artifact(key, copy, kind, art.metadata)
            in_artifacts[key] = {"artifacts": [runtime]}
        out_defs = component.get("outputDefinitions", {})
        out_artifacts = {
            key: {"artifacts": [_runtime_artifact(key, outputs / key, d["artifactType"], {})]}
            for key, d in out_defs.get("artifacts", {}).items()
        }
        out_params = {key: {"outputFile": str(outputs / "parameters" / key)}
                      for key in out_defs.get("parameters", {})}  # fmt: skip
        (outputs / "parameters").mkdir()
        executor_input = {
            "inputs": {"parameterValues": values, "artifacts": in_artifacts},
            "outputs": {"artifacts": out_artifacts, "parameters": out_params,
                        "outputFile": str(outputs / "executor_output.json")},
        }  # fmt: skip
        (folder / "executor_input.json").write_text(json.dumps(executor_input, indent=2))
        command = placeholder_utils.replace_placeholders(
            [*container.get("command", []), *container.get("args", [])],
            executor_input,
            pipeline_resource_name=self.job_name,
            task_resource_name=name,
            pipeline_root=str(self.work / "root"),
            unique_pipeline_id=self.job_id,
        )
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home), "TMPDIR": str(tmp), "LANG": "C.UTF-8",
            "XDG_CACHE_HOME": str(tmp / ".cache"), "MPLCONFIGDIR": str(tmp / "matplotlib"),
            "FEAST_USAGE": "False", "PYTHONDONTWRITEBYTECODE": "1",  # docker/Dockerfile's
            **{e["name"]: str(e["value"]) for e in container.get("env", [])},
        }  # fmt: skip
        run = TaskRun(name, "failed", folder=folder, parameters=values, mounts=mounts)
        try:
            done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                                  timeout=self.timeout)  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            run.log = f"timed out after {self.timeout} s\n{exc.stdout or ''}{exc.stderr or ''}"
            return run
        run.log = done.stdout + done.stderr
        (folder / "log.txt").write_text(run.log)
        if done.returncode != 0:
            return run
        return self._collect(run, out_defs, outputs)

    def _collect(self, run: TaskRun, out_defs: dict[str, Any], outputs: Path) -> TaskRun:
        """The task's outputs, as the launcher uploads them: a declared artifact that was not
        written fails the task."""
        result_file = outputs / "executor_output.json"
        result = json.loads(result_file.read_text()) if result_file.is_file() else {}
        for key in out_defs.get("parameters", {}):
            if key in result.get("parameterValues", {}):
                run.outputs[key] = result["parameterValues"][key]
            elif (outputs / "parameters" / key).is_file():
                run.outputs[key] = json.loads((outputs / "parameters" / key).read_text())
            else:
                run.log += f"\nrunner: output parameter {key!r} was not written"
                return run
        for key, definition in out_defs.get("artifacts", {}).items():
            path, kind = outputs / key, definition["artifactType"]
            if not path.exists() and kind["schemaTitle"] not in METADATA_ONLY:
                run.log += f"\nrunner: output artifact {key!r} was not written at {path}"
                return run
            written = result.get("artifacts", {}).get(key, {}).get("artifacts", [{}])[0]
            run.artifacts[key] = Artifact(path, kind["schemaTitle"], kind.get("schemaVersion", ""),
                                          written.get("metadata", {}))  # fmt: skip
        run.state = "succeeded"
        return run


def execute(package: str | Path, arguments: dict[str, Any], work: str | Path, *,
            volumes: dict[str, Path] | None = None, schedule_time: str = "",
            timeout: float = 900) -> PipelineRun:  # fmt: skip
    """Run a compiled package under `work` (tasks/<task>/, volumes/<pvc>/). `volumes` gives
    PVC name -> host folder for volumes prepared beforehand; others start empty. Returns the
    tasks' states; a failed task stops the run (its log is in the result)."""
    spec, platform = load_package(package)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    root = spec["root"]
    definitions = root.get("inputDefinitions", {}).get("parameters", {})
    unknown = set(arguments) - set(definitions)
    if unknown:
        raise PipelineSpecError(f"the pipeline has no parameters {sorted(unknown)}")
    parameters = {k: d["defaultValue"] for k, d in definitions.items() if "defaultValue" in d}
    parameters.update(arguments)
    missing = set(definitions) - set(parameters)
    if missing:
        raise PipelineSpecError(f"no value for the pipeline parameters {sorted(missing)}")
    executor = _Executor(spec, platform, work, dict(volumes or {}), schedule_time, timeout)
    executor.run_dag(root["dag"], parameters, {})
    return PipelineRun(executor.runs, executor.volumes)
