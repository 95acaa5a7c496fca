"""The deployment files pass their own tools: docker-compose, nginx and kubernetes-validate.

docker-compose and nginx come from Debian's packages and kubernetes-validate from the
``dev`` extra; ``scripts/test.sh`` installs them. A missing tool fails these tests rather
than skipping them. None of them needs a Docker engine, a running nginx or a cluster.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.files import (
    COMPOSE,
    ENV_EXAMPLE,
    K8S,
    KUSTOMIZATION,
    LLM_PROFILE,
    LLM_SERVICE,
    LOCAL_MODEL,
    NGINX_CONF,
    ROOT,
    SECRET_EXAMPLE,
    env_file_entries,
    k8s_resource_files,
    load_yaml,
    local_model_objects,
)

TOOL_TIMEOUT_S = 120.0
# The oldest Kubernetes release the manifests support, and the one they are written for.
KUBERNETES_VERSIONS = ("1.30.0", "1.35.0")
# Secrets docker-compose.yml refuses to start without (`${NAME:?...}`).
COMPOSE_SECRETS = (
    "LIVETUTOR_JWT_SECRET",
    "REDIS_PASSWORD",
    "REDIS_SENTINEL_PASSWORD",
    "POSTGRES_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "GRAFANA_ADMIN_PASSWORD",
)


def tool(name: str, install: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=f"{Path(sys.executable).parent}:/usr/sbin")
    if path is None:
        pytest.fail(f"{name} is not installed; scripts/test.sh installs it ({install})")
    return path


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, cwd=cwd
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(result.args)} failed:\n{output}"


# -- docker-compose -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_compose() -> str:
    return tool("docker-compose", "Debian: apt-get install --no-install-recommends docker-compose")


def env_file(tmp_path: Path, *, leave_empty: str = "") -> Path:
    """.env.example with every required secret filled in, except ``leave_empty``."""
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for name in COMPOSE_SECRETS:
        if name != leave_empty:
            text = re.sub(
                rf"^{name}=$", f"{name}=test-value-{name.lower()}-0123456789", text, flags=re.M
            )
    path = tmp_path / ".env"
    path.write_text(text, encoding="utf-8")
    return path


def compose_config(docker_compose: str, env: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(docker_compose, "--env-file", env, "-f", COMPOSE, "config", *args)


def test_compose_file_is_valid(docker_compose: str, tmp_path: Path) -> None:
    """`docker-compose config -q` accepts the stack once .env.example's secrets are set."""
    assert_ok(compose_config(docker_compose, env_file(tmp_path), "-q"))


@pytest.mark.parametrize("secret", COMPOSE_SECRETS)
def test_compose_refuses_to_run_without_a_secret(
    docker_compose: str, tmp_path: Path, secret: str
) -> None:
    """With a secret left empty, compose stops before starting anything and names it."""
    assert env_file_entries(ENV_EXAMPLE, commented=False)[secret] == "", "ship it empty"
    result = compose_config(docker_compose, env_file(tmp_path, leave_empty=secret), "-q")
    assert result.returncode != 0
    assert f"set {secret} in .env" in result.stderr


def test_compose_server_scales(docker_compose: str, tmp_path: Path) -> None:
    """The server runs two replicas by default and has no fixed name or host port to clash."""
    result = compose_config(docker_compose, env_file(tmp_path))
    assert_ok(result)
    services: dict[str, Any] = yaml.safe_load(result.stdout)["services"]
    server = services["server"]
    assert server["deploy"]["replicas"] >= 2
    assert "container_name" not in server
    assert "ports" not in server
    assert "hostname" not in server
    assert [s for s in services if "container_name" in services[s]] == []


def test_compose_passes_optional_settings_from_env(docker_compose: str, tmp_path: Path) -> None:
    """A setting uncommented in .env reaches the containers; left commented, it is not set."""
    env = env_file(tmp_path)
    unset = compose_config(docker_compose, env)
    assert_ok(unset)
    assert yaml.safe_load(unset.stdout)["services"]["server"]["environment"]["LLM_MODEL"] is None
    env.write_text(env.read_text() + "LLM_MODEL=llama3.1:8b\n", encoding="utf-8")
    set_ = compose_config(docker_compose, env)
    assert_ok(set_)
    for service in ("server", "worker", "beat"):
        environment = yaml.safe_load(set_.stdout)["services"][service]["environment"]
        assert environment["LLM_MODEL"] == "llama3.1:8b"


def test_compose_model_server_profile_is_valid(docker_compose: str, tmp_path: Path) -> None:
    """With the local-model profile on, compose accepts the stack with its llm service."""
    env = env_file(tmp_path)
    profile = ("--profile", LLM_PROFILE)
    result = run(docker_compose, "--env-file", env, "-f", COMPOSE, *profile, "config")
    assert_ok(result)
    services: dict[str, Any] = yaml.safe_load(result.stdout)["services"]
    assert services[LLM_SERVICE]["command"][0] == "llm"


def test_compose_switches_to_the_model_server(docker_compose: str, tmp_path: Path) -> None:
    """Uncommenting .env.example's switch starts the llm service and points the pods at it."""
    env = env_file(tmp_path)
    text = env.read_text(encoding="utf-8")
    start = text.index(f"# COMPOSE_PROFILES={LLM_PROFILE}")
    block = text[start:].split("\n# ", 4)
    switch = "\n".join(line.removeprefix("# ") for line in block[:4])
    env.write_text(text + "\n" + switch + "\nOPENAI_API_KEY=shared-key\n", encoding="utf-8")
    result = compose_config(docker_compose, env)
    assert_ok(result)
    services: dict[str, Any] = yaml.safe_load(result.stdout)["services"]
    for name in ("server", "worker"):
        environment = services[name]["environment"]
        assert environment["LIVETUTOR_LLM_PROVIDER"] == "openai"
        assert environment["OPENAI_BASE_URL"] == f"http://{LLM_SERVICE}:8090/v1"
        assert environment["OPENAI_API_KEY"] == "shared-key"
    assert services[LLM_SERVICE]["environment"]["OPENAI_API_KEY"] == "shared-key"


# -- nginx ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nginx() -> str:
    return tool("nginx", "Debian: apt-get install nginx")


def test_nginx_config_is_valid(nginx: str, tmp_path: Path) -> None:
    """`nginx -t` accepts deploy/nginx/nginx.conf under a temporary prefix."""
    result = run(nginx, "-t", "-e", "stderr", "-p", f"{tmp_path}/", "-c", NGINX_CONF)
    assert_ok(result)
    assert "test is successful" in result.stderr


def test_nginx_check_catches_errors(nginx: str, tmp_path: Path) -> None:
    """The same `nginx -t` fails on a broken copy, so its pass above means something."""
    broken = tmp_path / "nginx.conf"
    broken.write_text(
        NGINX_CONF.read_text().replace("proxy_read_timeout 3600s;", "proxy_read_timeout;")
    )
    result = run(nginx, "-t", "-e", "stderr", "-p", f"{tmp_path}/", "-c", broken)
    assert result.returncode != 0
    assert "proxy_read_timeout" in result.stderr


# -- Kubernetes -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kubernetes_validate() -> str:
    return tool("kubernetes-validate", "pip install -e '.[dev]'")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate(kubernetes_validate: str, version: str) -> None:
    """Every manifest, the example Secrets included, passes strict schema validation."""
    files = [*k8s_resource_files(), SECRET_EXAMPLE]
    result = run(kubernetes_validate, "--strict", "-k", version, "--quiet", *files)
    assert_ok(result)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_local_model_component_validates(
    kubernetes_validate: str, version: str, tmp_path: Path
) -> None:
    """k8s/ with the local-model component on passes the same strict validation."""
    built = tmp_path / "local-model.yaml"
    built.write_text(yaml.safe_dump_all(local_model_objects()), encoding="utf-8")
    result = run(kubernetes_validate, "--strict", "-k", version, "--quiet", built)
    assert_ok(result)


def kustomize_build() -> list[str] | None:
    """The command that runs `kustomize build`, if kustomize or kubectl is installed."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@pytest.mark.skipif(kustomize_build() is None, reason="needs kustomize or kubectl")
def test_kustomize_builds_the_local_model_component(tmp_path: Path) -> None:
    """Turned on in k8s/kustomization.yaml, kustomize builds what the tests above check."""
    command = kustomize_build()
    assert command
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    kustomization = copy / KUSTOMIZATION.name
    text = kustomization.read_text(encoding="utf-8")
    commented = f"# components:\n#   - {LOCAL_MODEL.name}\n"
    enabled = text.replace(commented, f"components:\n  - {LOCAL_MODEL.name}\n")
    assert enabled != text
    kustomization.write_text(enabled, encoding="utf-8")
    result = run(*command, copy)
    assert_ok(result)
    built = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    expected = local_model_objects()
    assert sorted(identity(o) for o in built) == sorted(identity(o) for o in expected)
    for obj in expected:
        [twin] = [o for o in built if identity(o) == identity(obj)]
        assert without_images(twin) == without_images(obj), identity(obj)


def identity(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def without_images(value: Any) -> Any:
    """``value`` with every container image dropped (kustomize renames them)."""
    if isinstance(value, dict):
        return {k: without_images(v) for k, v in value.items() if k != "image"}
    if isinstance(value, list):
        return [without_images(v) for v in value]
    return value


def test_validation_catches_unknown_fields(kubernetes_validate: str, tmp_path: Path) -> None:
    """A misspelt field fails the same validation, so its pass above means something."""
    source = (K8S / "server-deployment.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "server-deployment.yaml"
    broken.write_text(source.replace("readOnlyRootFilesystem", "readOnlyRootFileSystem"))
    result = run(kubernetes_validate, "--strict", "-k", KUBERNETES_VERSIONS[-1], "--quiet", broken)
    assert result.returncode != 0
    assert "readOnlyRootFileSystem" in result.stdout + result.stderr


def test_kustomization_applies_every_manifest_but_the_example_secret() -> None:
    """Each YAML file in k8s/ is a kustomization resource, except secret.example.yaml."""
    listed = {path.name for path in k8s_resource_files()}
    present = {path.name for path in K8S.glob("*.yaml")} - {KUSTOMIZATION.name}
    assert listed == present - {SECRET_EXAMPLE.name}
    assert load_yaml(KUSTOMIZATION)["namespace"] == "livetutor"
