"""Run a rendered stack's containers as local processes, the way a kubelet would start them.

`Node` plays one Kubernetes node for tests: each container's process gets the command and args
of its manifest, an environment built the kubelet's way (the image's `ENV`, then `envFrom`
ConfigMaps, then `env` in order, Secrets filled from test values, `$(VAR)` expanded), and its
working directory. Paths inside the container become host folders by rewriting their prefixes
in the command, args and environment:

- every volume mount: a PersistentVolumeClaim is one folder per claim, shared by every pod that
  mounts it (as on a cluster), a `subPath` a folder inside it, an emptyDir one folder per pod;
- each image's own folders (`Image.paths`): for the jobs' image (docker/Dockerfile, `app_image`)
  /app, its working directory, is a copy of what the Dockerfile's final stage COPYs from the
  repository and /opt/venv is this interpreter's environment; other images (the serving bento)
  are described by the test that builds them.

What this cannot show: the image's contents beyond those copies (its installed packages are
this environment's), read-only mounts and root filesystems (tests here may run as root), the
scheduler, probes, resource limits, DNS, NetworkPolicies and RBAC.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.kustomize import Obj, find

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
# The base image's PATH, which the Dockerfile's `ENV PATH=/opt/venv/bin:$PATH` extends.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def kubelet_expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: `$$` is a literal `$`, `$(NAME)` is NAME's value where
    NAME is defined, and stays as written where it is not."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("$(", i) and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2 : end]
            out.append(env.get(name, text[i : end + 1]))
            i = end + 1
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def map_paths(text: str, table: Mapping[str, Path]) -> str:
    """`text` with every container path prefix in `table` replaced by its host folder, in one
    pass (a replaced path is not matched again); a prefix matches whole path segments only."""
    if not table:
        return text
    prefixes = sorted(table, key=len, reverse=True)
    pattern = re.compile(
        r"(?<![\w./-])(" + "|".join(re.escape(p) for p in prefixes) + r")(?=/|$|[^\w.-])"
    )
    return pattern.sub(lambda m: str(table[m[1]]), text)


def dockerfile_final_stage() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile's last stage, continuation lines joined."""
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out: list[tuple[str, str]] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        word, _, rest = line.strip().partition(" ")
        if word.upper() == "FROM":
            out = []
        out.append((word.upper(), rest.strip()))
    return out


def image_env() -> dict[str, str]:
    """The image's `ENV` settings (final stage), as the container starts with them."""
    env: dict[str, str] = {}
    for word, rest in dockerfile_final_stage():
        if word == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value.replace("$PATH", BASE_PATH)
    return env


def image_workdir() -> str:
    workdirs = [rest for word, rest in dockerfile_final_stage() if word == "WORKDIR"]
    return workdirs[-1]


def copy_image_files(destination: Path) -> Path:
    """What the final stage COPYs from the build context, under `destination` (the image's /)."""
    workdir = image_workdir()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "data", "dataset.yaml", "*.egg-info")
    for word, rest in dockerfile_final_stage():
        if word != "COPY" or rest.startswith("--"):
            continue
        *sources, target = shlex.split(rest)
        base = destination / (target if target.startswith("/") else f"{workdir}/{target}").lstrip(
            "/"
        )
        for source in sources:
            src = ROOT / source
            if src.is_dir():
                shutil.copytree(src, base, ignore=skip, dirs_exist_ok=True)
            else:
                base.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, base / src.name)
    return destination


@dataclass(frozen=True)
class Image:
    """What a container image contributes: its ENV, its working directory and its folders (an
    image path -> the host folder holding those files)."""

    env: dict[str, str]
    workdir: str
    paths: dict[str, Path]


def image_name(reference: str) -> str:
    """`registry/name` of an image reference, without tag or digest."""
    name = reference.split("@")[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def app_image(destination: Path) -> Image:
    """The jobs' image built from docker/Dockerfile, its files copied under `destination`."""
    copy_image_files(destination)
    workdir = image_workdir()
    paths = {workdir: destination / workdir.lstrip("/"), "/opt/venv": Path(sys.prefix)}
    return Image(env=image_env(), workdir=workdir, paths=paths)


@dataclass(frozen=True)
class Container:
    """A container of a rendered pod template: `where` is kind/name[/replica]/container."""

    where: str
    pod: str  # the pod's name on this node (emptyDirs are per pod)
    pod_spec: Obj
    spec: Obj


@dataclass(frozen=True)
class Process:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    paths: dict[str, Path]  # container path -> host folder

    def host(self, container_path: str) -> Path:
        return Path(map_paths(container_path, self.paths))


def pod_template(obj: Obj, replica: str | None = None) -> Obj:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]
    if obj["kind"] == "PyTorchJob":
        return spec["pytorchReplicaSpecs"][replica or "Master"]["template"]
    return spec["template"]


def container(
    objects: list[Obj], kind: str, name: str, container_name: str, replica: str | None = None
) -> Container:
    template = pod_template(find(objects, kind, name), replica)
    spec = template["spec"]
    matches = [
        c
        for c in spec.get("initContainers", []) + spec["containers"]
        if c["name"] == container_name
    ]
    assert len(matches) == 1, f"{kind}/{name}: expected one container {container_name}"
    where = "/".join(p for p in (kind, name, replica, container_name) if p)
    pod = "-".join(p for p in (name, (replica or "").lower()) if p)
    return Container(where=where, pod=pod, pod_spec=spec, spec=matches[0])


class Node:
    """Host folders standing in for a node's volumes, and the values of the stack's Secrets."""

    def __init__(
        self,
        root: Path,
        objects: list[Obj],
        secrets: Mapping[tuple[str, str], str],
        images: Mapping[str, Image],
    ):
        """`images`: image name (without tag) -> what it holds; a container of another image
        cannot run here."""
        self.root = root
        self.objects = objects
        self.secrets = dict(secrets)
        self.images = dict(images)

    def image(self, c: Container) -> Image:
        name = image_name(c.spec["image"])
        if name not in self.images:
            raise KeyError(f"{c.where}: image {name} is not described to this node")
        return self.images[name]

    def claim(self, name: str) -> Path:
        """The folder of PersistentVolumeClaim `name`, shared by every pod that mounts it."""
        path = self.root / "claims" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _volume(self, c: Container, name: str) -> Path:
        (volume,) = [v for v in c.pod_spec.get("volumes", []) if v["name"] == name]
        if "persistentVolumeClaim" in volume:
            return self.claim(volume["persistentVolumeClaim"]["claimName"])
        if "emptyDir" in volume:
            path = self.root / "pods" / c.pod / name
            path.mkdir(parents=True, exist_ok=True)
            return path
        raise NotImplementedError(f"{c.where}: volume {name} is neither a claim nor an emptyDir")

    def paths(self, c: Container) -> dict[str, Path]:
        table = dict(self.image(c).paths)
        for mount in c.spec.get("volumeMounts", []):
            path = self._volume(c, mount["name"])
            if mount.get("subPath"):
                path = path / mount["subPath"]
                path.mkdir(parents=True, exist_ok=True)
            table[mount["mountPath"]] = path
        return table

    def _config_map(self, name: str) -> dict[str, str]:
        return dict(find(self.objects, "ConfigMap", name).get("data", {}))

    def declared(self, c: Container, injected: Mapping[str, str] = ()) -> dict[str, str]:
        """The variables the pod spec declares, as the kubelet resolves them: `injected` (what an
        operator adds, e.g. the training operator's RANK), then envFrom, then env in order, each
        `$(VAR)` expanded from those before it. The image's ENV is not among them."""
        env = dict(injected)
        for source in c.spec.get("envFrom", []):
            ref = source.get("configMapRef") or {}
            if not ref:
                raise NotImplementedError(f"{c.where}: envFrom {source}")
            env.update(self._config_map(ref["name"]))
        for item in c.spec.get("env", []):
            if "value" in item:
                env[item["name"]] = kubelet_expand(item["value"], env)
                continue
            ref = item.get("valueFrom", {})
            if "secretKeyRef" in ref:
                key = (ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"])
                if key not in self.secrets:
                    raise KeyError(f"{c.where}: env {item['name']} reads Secret {key}: no value")
                env[item["name"]] = self.secrets[key]
            elif "configMapKeyRef" in ref:
                cm = ref["configMapKeyRef"]
                env[item["name"]] = self._config_map(cm["name"])[cm["key"]]
            else:
                raise NotImplementedError(f"{c.where}: env {item['name']}: {ref}")
        return env

    def process(self, c: Container, injected: Mapping[str, str] = (), **extra: str) -> Process:
        """The process the kubelet would start for `c`; `extra` adds host-only settings."""
        env = self.declared(c, injected)
        argv = [kubelet_expand(a, env) for a in c.spec.get("command", []) + c.spec.get("args", [])]
        assert argv, f"{c.where}: no command (the image's CMD is not run here)"
        paths = self.paths(c)
        image = self.image(c)
        host_env = {k: map_paths(v, paths) for k, v in (image.env | env).items()} | extra
        cwd = Path(map_paths(c.spec.get("workingDir", image.workdir), paths))
        return Process([map_paths(a, paths) for a in argv], host_env, cwd, paths)


def run(process: Process, timeout_s: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        process.argv,
        cwd=process.cwd,
        env=process.env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def start(process: Process, log: Path) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(
        process.argv, cwd=process.cwd, env=process.env, stdout=handle, stderr=subprocess.STDOUT
    )


def rebind(argv: list[str], port: int) -> list[str]:
    """A server's argv listening on 127.0.0.1:port instead of its `--host`/`--port`."""
    out = list(argv)
    for flag, value in (("--host", "127.0.0.1"), ("--port", str(port))):
        assert flag in out, f"{argv}: no {flag}"
        out[out.index(flag) + 1] = value
    return out


def describe(done: Any) -> str:
    return f"exit {done.returncode}\n{(done.stdout or '')[-3000:]}\n{(done.stderr or '')[-4000:]}"
