"""Readers for the deployment files, shared by the tests in this package."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
K8S = ROOT / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
# The optional model server: a kustomize component that k8s/kustomization.yaml can turn on.
LOCAL_MODEL = K8S / "local-model"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
PROMETHEUS = ROOT / "monitoring" / "prometheus.yml"
BENCHMARKS = ROOT / "docs" / "benchmarks.md"

# The services of docker-compose.yml that run the LiveTutor image.
APP_SERVICES = ("server", "worker", "beat")
# The optional model server (`livetutor llm`), in compose and in the k8s component.
LLM_SERVICE = "llm"
LLM_PROFILE = "local-model"
# The image the Kubernetes manifests run (kustomization.yaml sets registry and tag).
APP_IMAGE = "livetutor"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# -- .env files -----------------------------------------------------------------------------

_ENV_LINE = re.compile(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=(.*)$")


def env_file_entries(path: Path, *, commented: bool = True) -> dict[str, str]:
    """``NAME=value`` lines of an env file; with ``commented``, also ``# NAME=value`` ones."""
    entries: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not commented and line.lstrip().startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


# -- docker-compose.yml ---------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


def service_env_names(service: dict[str, Any]) -> list[str]:
    """Variable names a compose service sets, from a list or a mapping."""
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return list(env)
    return [entry.split("=", 1)[0] for entry in env]


def service_env_values(service: dict[str, Any]) -> dict[str, str]:
    """Variables with a literal value (no ``${...}``) that a compose service sets."""
    env = service.get("environment") or {}
    items = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env if "=" in e)
    return {name: str(value) for name, value in items if "${" not in str(value)}


def compose_interpolated_names() -> set[str]:
    """Every ``${NAME...}`` docker-compose.yml interpolates."""
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text(encoding="utf-8")))


def duration_s(value: str) -> float:
    """A compose duration such as ``60s``, ``1m30s`` or ``500ms`` in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"bad duration {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


# -- Kubernetes -----------------------------------------------------------------------------


def k8s_resource_files() -> list[Path]:
    """The files kustomization.yaml applies, in its order."""
    return [K8S / name for name in load_yaml(KUSTOMIZATION)["resources"]]


def k8s_objects(paths: list[Path] | None = None) -> list[dict[str, Any]]:
    """Every object in the kustomization's files (or in ``paths``)."""
    objects: list[dict[str, Any]] = []
    for path in k8s_resource_files() if paths is None else paths:
        text = path.read_text(encoding="utf-8")
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def k8s_object(kind: str, name: str, paths: list[Path] | None = None) -> dict[str, Any]:
    return only(k8s_objects(paths), kind, name)


def only(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def local_model_kustomization() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(LOCAL_MODEL / "kustomization.yaml")
    return data


def local_model_objects() -> list[dict[str, Any]]:
    """The objects k8s/ applies with the local-model component on, as kustomize builds them.

    Only what the component uses is done here: its resources are added and its patches
    merged into the base objects they name (maps merged key by key, anything else
    replaced). Image names are left as written. A test compares the result with a real
    ``kustomize build`` where one is installed.
    """
    component = local_model_kustomization()
    objects = k8s_objects()
    for patch in component.get("patches", []):
        for doc in yaml.safe_load_all((LOCAL_MODEL / patch["path"]).read_text(encoding="utf-8")):
            target = only(objects, doc["kind"], doc["metadata"]["name"])
            objects[objects.index(target)] = _merged(target, doc)
    return objects + k8s_objects([LOCAL_MODEL / name for name in component["resources"]])


def _merged(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        return {k: _merged(base[k], v) if k in base else v for k, v in patch.items()} | {
            k: v for k, v in base.items() if k not in patch
        }
    return patch


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every Deployment and StatefulSet."""
    for obj in k8s_objects():
        if obj["kind"] in ("Deployment", "StatefulSet"):
            yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]


def app_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload name, container) of every container running the LiveTutor image."""
    for workload, spec in pod_specs():
        for container in spec["containers"]:
            if container["image"].split(":")[0] == APP_IMAGE:
                yield workload, container


def container(workload: str, name: str) -> dict[str, Any]:
    for found_workload, spec in pod_specs():
        if found_workload == workload:
            for candidate in spec["containers"]:
                if candidate["name"] == name:
                    result: dict[str, Any] = candidate
                    return result
    raise AssertionError(f"no container {name} in {workload}")


def config_map_data() -> dict[str, str]:
    data: dict[str, str] = k8s_object("ConfigMap", "livetutor-config")["data"]
    return data


def example_secret_data(name: str = "livetutor-secrets") -> dict[str, str]:
    data: dict[str, str] = k8s_object("Secret", name, [SECRET_EXAMPLE])["stringData"]
    return data


def quantity_bytes(value: str) -> int:
    """A Kubernetes memory quantity (``512Mi``, ``1Gi``, ``1G``) in bytes."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    match = re.fullmatch(r"(\d+)([KMG]i?)?", value)
    assert match, f"bad quantity {value!r}"
    return int(match.group(1)) * (units[match.group(2)] if match.group(2) else 1)


def quantity_millicores(value: str) -> int:
    """A Kubernetes CPU quantity (``500m``, ``1``) in millicores."""
    return int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)


# -- Dockerfile -----------------------------------------------------------------------------


@dataclass
class Stage:
    """One ``FROM`` stage of the Dockerfile: its base, name and instructions."""

    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def dockerfile_stages() -> list[Stage]:
    """The Dockerfile's stages, with continuation lines joined and ``ARG`` defaults applied."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = " ".join(rest.split())
        if keyword == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args.setdefault(name, default)
        expanded = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), rest)
        if keyword == "FROM":
            base, _, name = expanded.partition(" AS ")
            stages.append(Stage(base=base.strip(), name=name.strip()))
        elif stages:
            stages[-1].instructions.append((keyword, expanded))
    return stages


# -- nginx ----------------------------------------------------------------------------------


@dataclass
class Block:
    """An nginx block: its directives (name, arguments) and nested blocks."""

    name: str
    args: list[str]
    directives: list[tuple[str, list[str]]] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    def values(self, name: str) -> list[list[str]]:
        return [args for directive, args in self.directives if directive == name]

    def block(self, name: str, *args: str) -> Block:
        found = [b for b in self.blocks if b.name == name and tuple(b.args) == args]
        assert len(found) == 1, f"expected one block {name} {args}, found {len(found)}"
        return found[0]


def _nginx_tokens(text: str) -> Iterator[str]:
    for match in re.finditer(r"#[^\n]*|\"(?:[^\"\\]|\\.)*\"|'[^']*'|[{};]|[^\s{};\"'#]+", text):
        token = match.group(0)
        if token.startswith("#"):
            continue
        if token[0] in "\"'":
            token = token[1:-1]
        yield token


def nginx_config(path: Path = NGINX_CONF) -> Block:
    """The nginx configuration as a tree of blocks."""
    root = Block("main", [])
    stack = [root]
    words: list[str] = []
    for token in _nginx_tokens(path.read_text(encoding="utf-8")):
        if token == ";":
            stack[-1].directives.append((words[0], words[1:]))
            words = []
        elif token == "{":
            block = Block(words[0], words[1:])
            stack[-1].blocks.append(block)
            stack.append(block)
            words = []
        elif token == "}":
            stack.pop()
        else:
            words.append(token)
    assert len(stack) == 1 and not words, "unbalanced nginx configuration"
    return root
