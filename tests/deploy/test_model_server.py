"""The optional model server (`livetutor llm`) in docker-compose and the k8s component.

The files must agree with the command line, the settings and each other: the port, the
address the pods are given, who may reach the server, its probes and its resources. The
last tests run the real model server the way the containers do, so they need the
``local`` extra (``make test`` installs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from core.settings import LocalModelSettings, Settings, env_names
from server.cli import parser
from tests.deploy.files import (
    APP_SERVICES,
    ENV_EXAMPLE,
    KUSTOMIZATION,
    LLM_PROFILE,
    LLM_SERVICE,
    LOCAL_MODEL,
    ROOT,
    compose,
    dockerfile_stages,
    example_secret_data,
    k8s_objects,
    load_yaml,
    local_model_kustomization,
    local_model_objects,
    only,
    quantity_millicores,
    service_env_names,
    service_env_values,
)
from tutor.local_model import BUNDLED_FILE, bundled_model_path, model_name, server_command

# Read by llama.cpp's server, not by LiveTutor: a new request must queue, not cut the answer.
LLAMA_SERVER_ENV = {"INTERRUPT_REQUESTS": "false"}
# The path the probes and the compose health check ask: answered at once, with no key.
PROBE_PATH = "/docs"
SERVER = "livetutor-server"
WORKER = "livetutor-worker"
BEAT = "livetutor-beat"

needs_model = pytest.mark.skipif(
    bundled_model_path() is None, reason="needs the 'local' extra (make test installs it)"
)


def llm_service() -> dict[str, Any]:
    service: dict[str, Any] = compose()["services"][LLM_SERVICE]
    return service


def llm_deployment() -> dict[str, Any]:
    return only(local_model_objects(), "Deployment", LLM_SERVICE)


def llm_container() -> dict[str, Any]:
    [container] = llm_deployment()["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def cli_port(args: list[str]) -> int:
    """The port `livetutor <args>` serves the model on, as the real command line parses it."""
    parsed = parser().parse_args(args)
    assert parsed.command == "llm"
    assert parsed.llm_host == "0.0.0.0", "reachable from other containers"
    port: int = parsed.llm_port
    return port


def healthcheck_url(service: dict[str, Any]) -> str:
    [url] = re.findall(r"http://[^'\"]+", " ".join(service["healthcheck"]["test"]))
    return str(url)


def switch_block() -> dict[str, str]:
    """The commented lines of .env.example that switch the stack to the model server."""
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    block = text.split("# -- a model on this host", 1)[1].split("\n# --", 1)[0]
    lines = block.splitlines()
    start = lines.index(f"# COMPOSE_PROFILES={LLM_PROFILE}")
    entries = {}
    for line in lines[start:]:
        match = re.fullmatch(r"# ([A-Z][A-Z0-9_]*)=(.*)", line)
        if not match:
            break
        entries[match.group(1)] = match.group(2)
    return entries


def bundled_model_name() -> str:
    return model_name(Path(BUNDLED_FILE))


# -- docker-compose -------------------------------------------------------------------------


def test_compose_model_server_is_optional() -> None:
    """The llm service starts only with its profile, and nothing waits for it."""
    assert llm_service()["profiles"] == [LLM_PROFILE]
    for name, service in compose()["services"].items():
        assert LLM_SERVICE not in (service.get("depends_on") or {}), name


def test_compose_model_server_runs_the_cli() -> None:
    """Its command is a valid `livetutor llm`; port, expose and health check agree."""
    service = llm_service()
    port = cli_port(service["command"])
    assert service["expose"] == [str(port)]
    url = urlsplit(healthcheck_url(service))
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", port, PROBE_PATH)


def test_compose_pods_reach_the_model_server_by_the_example() -> None:
    """.env.example's switch gives the pods the openai provider, the llm service and its model."""
    entries = switch_block()
    assert set(entries) == {
        "COMPOSE_PROFILES",
        "LIVETUTOR_LLM_PROVIDER",
        "OPENAI_BASE_URL",
        "LLM_MODEL",
    }
    settings = Settings.from_env(entries)
    assert settings.llm_provider == "openai"
    url = urlsplit(settings.llm.base_url)
    assert (url.hostname, url.port) == (LLM_SERVICE, cli_port(llm_service()["command"]))
    assert settings.llm.model == bundled_model_name()
    for name in APP_SERVICES:
        passed = service_env_names(compose()["services"][name])
        assert {"LIVETUTOR_LLM_PROVIDER", "OPENAI_BASE_URL", "LLM_MODEL"} <= set(passed), name
        assert "OPENAI_API_KEY" in passed, name
    assert "OPENAI_API_KEY" in service_env_names(llm_service()), "it checks the key pods send"


def test_compose_model_server_is_private() -> None:
    """Only the server and worker share the llm service's network, which has no way out."""
    services = compose()["services"]
    network = compose()["networks"]
    [name] = llm_service()["networks"]
    assert network[name]["internal"] is True
    members = {s for s, service in services.items() if name in (service.get("networks") or [])}
    assert members == {LLM_SERVICE, "server", "worker"}
    assert "ports" not in llm_service()


def test_compose_model_server_settings() -> None:
    """It reads only LiveTutor settings and llama.cpp's switch; one thread per CPU it gets."""
    service = llm_service()
    names = set(service_env_names(service))
    assert names - set(env_names()) - set(LLAMA_SERVER_ENV) == set()
    values = service_env_values(service)
    for name, value in LLAMA_SERVER_ENV.items():
        assert values[name] == value
    threads = re.fullmatch(
        r"LIVETUTOR_LOCAL_THREADS=\$\{LIVETUTOR_LOCAL_THREADS:-(\d+)\}",
        next(e for e in service["environment"] if e.startswith("LIVETUTOR_LOCAL_THREADS=")),
    )
    assert threads
    assert float(service["deploy"]["resources"]["limits"]["cpus"]) == int(threads.group(1))


def test_compose_model_server_is_read_only() -> None:
    """Like the other LiveTutor containers: read-only, /tmp on a tmpfs, models read-only."""
    service = llm_service()
    assert service["read_only"] is True
    assert service["tmpfs"] == ["/tmp"]
    assert all(volume.endswith(":ro") for volume in service["volumes"])


def test_compose_model_server_image_has_the_local_extra() -> None:
    """Its image is built with the `local` extra, under a name of its own."""
    service = llm_service()
    extras = service["build"]["args"]["EXTRAS"].split(",")
    assert "local" in extras and "minilm" in extras
    assert set(extras) <= pyproject_extras()
    app_image = compose()["services"]["server"]["image"]
    assert service["image"] != app_image, "one build would overwrite the other's image"


# -- the image ------------------------------------------------------------------------------


def pyproject_extras() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(pyproject["project"]["optional-dependencies"])


def test_image_extras_are_a_build_argument() -> None:
    """EXTRAS (default minilm) reaches the pip install and the runtime stage that needs it."""
    build = next(s for s in dockerfile_stages() if s.name == "build")
    runtime = dockerfile_stages()[-1]
    for stage in (build, runtime):
        # A global ARG is visible inside a stage only once the stage declares it again.
        assert "EXTRAS" in stage.arguments("ARG"), stage.name
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert '".[${EXTRAS}]"' in text
    assert "ARG EXTRAS=minilm\n" in text


def test_image_builds_llama_cpp_for_any_node() -> None:
    """llama.cpp is compiled for a portable CPU baseline, not the build machine's own CPU."""
    build = next(s for s in dockerfile_stages() if s.name == "build")
    installs = [r for r in build.arguments("RUN") if "pip install" in r]
    assert len(installs) == 2
    for install in installs:
        assert re.search(r'CMAKE_ARGS=""?-DGGML_NATIVE=OFF"?"? pip install', install), install


@pytest.mark.parametrize(("extras", "installed"), [("minilm", False), ("minilm,local", True)])
def test_local_extra_has_a_layer_of_its_own(tmp_path: Path, extras: str, installed: bool) -> None:
    """Before the sources are copied, one layer installs the local extra's pins, and only them."""
    # As written, ${...} unexpanded: the shell gets EXTRAS from the environment, as in a build.
    joined = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    [layer] = [
        line.removeprefix("RUN ")
        for line in joined.splitlines()
        if line.startswith("RUN ") and "-r /tmp/local-extra.txt" in line
    ]
    (tmp_path / "bin").mkdir()
    fake_pip = tmp_path / "bin" / "pip"
    # Writes the requirements file it was given (-r FILE) where the test reads it.
    fake_pip.write_text(
        '#!/bin/sh\nwhile [ "$1" != -r ]; do shift; done\ncat "$2" > "$OUT"\n', encoding="utf-8"
    )
    fake_pip.chmod(0o755)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "bin" / "python").symlink_to(sys.executable)
    out = tmp_path / "requirements.txt"
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "EXTRAS": extras, "OUT": str(out)}
    script = layer.replace("/tmp/local-extra.txt", "extra.txt")
    subprocess.run(["sh", "-c", script], cwd=tmp_path, env=env, check=True, timeout=30)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    expected = pyproject["project"]["optional-dependencies"]["local"]
    assert (out.read_text().split() if out.exists() else []) == (expected if installed else [])


# Libraries of Debian's slim image: glibc's, and the C++ runtime apt itself needs.
SLIM_IMAGE_LIBRARIES = {"libc", "libm", "libpthread", "libdl", "librt", "libstdc++", "libgcc_s"}
# Debian packages the runtime stage installs for the `local` extra, by library.
RUNTIME_PACKAGES = {"libgomp": "libgomp1"}


@needs_model
def test_image_has_every_library_llama_cpp_links() -> None:
    """Each shared library llama.cpp's build needs is in the slim image or installed for it."""
    import llama_cpp

    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    own = {path.name for path in lib_dir.iterdir()}
    needed: set[str] = set()
    for library in lib_dir.glob("*.so"):
        output = subprocess.run(
            ["ldd", str(library)], capture_output=True, text=True, check=True
        ).stdout
        needed |= set(re.findall(r"^\s*(\S+\.so[.\d]*)\s+=>", output, re.M)) - own
    stems = {name.split(".so")[0] for name in needed}
    missing = stems - SLIM_IMAGE_LIBRARIES - set(RUNTIME_PACKAGES)
    assert missing == set(), f"the runtime stage must install these for the local extra: {missing}"
    runtime_run = " ".join(dockerfile_stages()[-1].arguments("RUN"))
    for stem in stems & set(RUNTIME_PACKAGES):
        assert f"--no-install-recommends {RUNTIME_PACKAGES[stem]}" in runtime_run, stem


# -- Kubernetes -----------------------------------------------------------------------------


def test_component_is_turned_on_from_the_base() -> None:
    """k8s/kustomization.yaml names the component (commented out) and it lists all its files."""
    text = KUSTOMIZATION.read_text(encoding="utf-8")
    assert f"# components:\n#   - {LOCAL_MODEL.name}\n" in text
    component = local_model_kustomization()
    assert component["kind"] == "Component"
    listed = set(component["resources"]) | {p["path"] for p in component["patches"]}
    present = {p.name for p in LOCAL_MODEL.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_component_objects_are_in_the_namespace() -> None:
    """Its objects name the base's namespace, and the base objects are all kept."""
    namespace = load_yaml(KUSTOMIZATION)["namespace"]
    added = local_model_objects()[len(k8s_objects()) :]
    assert {(o["kind"], o["metadata"]["name"]) for o in added} == {
        ("Deployment", LLM_SERVICE),
        ("Service", LLM_SERVICE),
        ("NetworkPolicy", LLM_SERVICE),
        ("NetworkPolicy", "llm-clients-egress"),
    }
    for obj in added:
        assert obj["metadata"]["namespace"] == namespace


def test_k8s_model_server_port_matches() -> None:
    """The command's port is the container port, the Service's and the pods' base URL."""
    container = llm_container()
    port = cli_port(container["args"])
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    service = only(local_model_objects(), "Service", LLM_SERVICE)
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(port, "http")]
    labels = llm_deployment()["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    url = urlsplit(k8s_pod_settings().llm.base_url)
    assert (url.hostname, url.port) == (service["metadata"]["name"], port)


def k8s_pod_settings() -> Settings:
    """Settings of a server pod with the component on."""
    config = only(local_model_objects(), "ConfigMap", "livetutor-config")["data"]
    return Settings.from_env({**config, **example_secret_data()})


def test_k8s_pods_ask_the_model_server() -> None:
    """With the component on, server and worker use the openai provider and the bundled model."""
    settings = k8s_pod_settings()
    assert settings.llm_provider == "openai"
    assert settings.llm.model == bundled_model_name()
    for workload in (SERVER, WORKER):
        deployment = only(local_model_objects(), "Deployment", workload)
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        sources = container["envFrom"]
        assert {"configMapRef": {"name": "livetutor-config"}} in sources
        assert {"secretRef": {"name": "livetutor-secrets"}} in sources, "they send the key"
        # Else the Service `llm` would add LLM_PORT, LLM_SERVICE_HOST, ... beside LLM_MODEL.
        assert deployment["spec"]["template"]["spec"]["enableServiceLinks"] is False


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and In expressions) selects these labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def pod_labels() -> dict[str, dict[str, str]]:
    labels = {}
    for obj in local_model_objects():
        if obj["kind"] in ("Deployment", "StatefulSet"):
            labels[obj["metadata"]["name"]] = obj["spec"]["template"]["metadata"]["labels"]
    return labels


def test_only_server_and_worker_reach_the_model_server() -> None:
    """Ingress to the llm pods on its port comes from server and worker pods alone, both ways."""
    pods = pod_labels()
    llm_labels = pods[LLM_SERVICE]
    port = cli_port(llm_container()["args"])
    policies = [o for o in local_model_objects() if o["kind"] == "NetworkPolicy"]
    may_enter: set[str] = set()
    may_leave: set[str] = set()
    for policy in policies:
        spec = policy["spec"]
        if selects(spec["podSelector"], llm_labels):
            for rule in spec.get("ingress", []):
                assert {p["port"] for p in rule["ports"]} == {port}
                for peer in rule["from"]:
                    assert set(peer) == {"podSelector"}, "no other namespace, no address"
                    may_enter |= {n for n, lb in pods.items() if selects(peer["podSelector"], lb)}
        for rule in spec.get("egress", []):
            for peer in rule.get("to", []):
                if "podSelector" in peer and selects(peer["podSelector"], llm_labels):
                    assert {p["port"] for p in rule["ports"]} == {port}
                    may_leave |= {n for n, lb in pods.items() if selects(spec["podSelector"], lb)}
    assert may_enter == {SERVER, WORKER}
    assert may_leave == {SERVER, WORKER}


def test_model_server_reaches_nothing() -> None:
    """The llm pods may send nothing but name lookups: the model is in the image or a volume."""
    llm_labels = pod_labels()[LLM_SERVICE]
    for policy in (o for o in local_model_objects() if o["kind"] == "NetworkPolicy"):
        spec = policy["spec"]
        if selects(spec["podSelector"], llm_labels):
            for rule in spec.get("egress", []):
                assert {p["port"] for p in rule["ports"]} == {53}, policy["metadata"]["name"]
    own = only(local_model_objects(), "NetworkPolicy", LLM_SERVICE)["spec"]
    assert own["policyTypes"] == ["Ingress", "Egress"] and "egress" not in own


def test_model_server_probes() -> None:
    """Probes ask the path that answers at once, and outlast a load and a supervised restart."""
    container = llm_container()
    defaults = LocalModelSettings()
    env = {e["name"]: e.get("value") for e in container["env"]}
    load_timeout_s = float(env.get("LIVETUTOR_LOCAL_LOAD_TIMEOUT_S") or defaults.load_timeout_s)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": PROBE_PATH, "port": "http"}, probe

    def window_s(probe: dict[str, Any]) -> float:
        return float(probe["periodSeconds"] * probe["failureThreshold"])

    assert window_s(container["startupProbe"]) > load_timeout_s
    assert window_s(container["livenessProbe"]) > defaults.restart_max_backoff_s + load_timeout_s


def test_model_server_threads_match_its_cpus() -> None:
    """One decoding thread per CPU of its limit, and the CPUs it is limited to are reserved."""
    container = llm_container()
    env = {e["name"]: e.get("value") for e in container["env"]}
    resources = container["resources"]
    cpus = quantity_millicores(resources["limits"]["cpu"])
    assert int(env["LIVETUTOR_LOCAL_THREADS"]) * 1000 == cpus
    assert quantity_millicores(resources["requests"]["cpu"]) == cpus


def test_model_server_environment() -> None:
    """Settings and llama.cpp's switch only; the key is the pods' key, and may be absent."""
    container = llm_container()
    names = {e["name"] for e in container["env"]}
    assert names - set(env_names()) - set(LLAMA_SERVER_ENV) == set()
    env = {e["name"]: e for e in container["env"]}
    for name, value in LLAMA_SERVER_ENV.items():
        assert env[name]["value"] == value
    key = env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert key == {"name": "livetutor-secrets", "key": "OPENAI_API_KEY", "optional": True}
    assert "OPENAI_API_KEY" in example_secret_data()
    config = only(local_model_objects(), "ConfigMap", "livetutor-config")["data"]
    for entry in container["env"]:
        ref = entry.get("valueFrom", {}).get("configMapKeyRef")
        if ref:
            assert ref["name"] == "livetutor-config" and ref["key"] in config


def test_model_server_is_locked_down() -> None:
    """Non-root as the image's user, read-only root, no privileges, /tmp an emptyDir."""
    spec = llm_deployment()["spec"]["template"]["spec"]
    [user] = dockerfile_stages()[-1].arguments("USER")
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == int(user.split(":")[0])
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    sc = llm_container()["securityContext"]
    assert sc == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = {m["mountPath"]: m["name"] for m in llm_container()["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_model_server_image_is_the_local_build() -> None:
    """The llm container runs the image the component's `images` entry names, not the base's."""
    [image] = local_model_kustomization()["images"]
    assert llm_container()["image"].split(":")[0] == image["name"]
    assert image["newTag"].endswith("-local")
    base_images = {i["name"] for i in load_yaml(KUSTOMIZATION)["images"]}
    assert image["name"] not in base_images


# -- the model server as the containers run it ----------------------------------------------


class ModelServer:
    """`livetutor llm` on a free port, with the environment the containers give it.

    With ``bare``, llama.cpp's server itself with the same model and key, for what
    llama.cpp does on its own.
    """

    def __init__(self, tmp_path: Path, env: dict[str, str], *, bare: bool = False) -> None:
        self.port = free_port()
        self.key = "test-key-0123456789"
        self.log_path = tmp_path / "llm.log"
        self.log = self.log_path.open("wb")
        # Nothing of the test run's own LiveTutor or llama.cpp settings.
        own = [k for k in os.environ if k.startswith("LIVETUTOR_") or k in LLAMA_SERVER_ENV]
        environment = {k: v for k, v in os.environ.items() if k not in own}
        environment |= {
            "OPENAI_API_KEY": self.key,
            "LIVETUTOR_LOCAL_THREADS": "1",
            "LIVETUTOR_LOCAL_CONTEXT_TOKENS": "512",
            "LIVETUTOR_DATA_DIR": str(tmp_path / "data"),
            **env,
        }
        if bare:
            self.model = bundled_model_name()
            environment["API_KEY"] = self.key
            # llama.cpp's server module, with the model parameters LiveTutor's child uses.
            command = [*server_command(repack=False), "--model"]
            command += [str(bundled_model_path()), "--model_alias", self.model]
            command += ["--n_ctx", "512", "--n_threads", "1"]
        else:
            livetutor = shutil.which("livetutor", path=str(Path(sys.executable).parent))
            assert livetutor
            command = [livetutor, "llm"]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            command, env=environment, stdout=subprocess.PIPE, stderr=self.log
        )
        if bare:
            self.wait_listening()
        else:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline().decode()
            assert " serves the OpenAI API at " in line, self.log_path.read_text()
            self.model = line.split(" serves ", 1)[0]

    def wait_listening(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                with urllib.request.urlopen(self.url(PROBE_PATH), timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"llama.cpp's server did not start: {self.log_path.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stream_answer(self, max_tokens: int) -> tuple[int, str | None]:
        """(content chunks, finish reason) of one streamed chat completion."""
        body = {
            "model": self.model,
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": 0,
            "messages": [{"role": "user", "content": "Tell me a long story about a cat."}],
        }
        request = urllib.request.Request(
            self.url("/v1/chat/completions"),
            json.dumps(body).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"},
        )
        chunks, finish = 0, None
        with urllib.request.urlopen(request, timeout=60) as response:
            for raw in response:
                line = raw.strip()
                if line.startswith(b"data: {"):
                    choice = json.loads(line[6:])["choices"][0]
                    chunks += bool(choice.get("delta", {}).get("content"))
                    finish = choice.get("finish_reason") or finish
        return chunks, finish


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def model_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ModelServer]:
    bare = getattr(request, "param", False)
    server = ModelServer(tmp_path, {} if bare else dict(LLAMA_SERVER_ENV), bare=bare)
    try:
        yield server
    finally:
        server.stop()


def run_healthcheck(server: ModelServer) -> subprocess.CompletedProcess[str]:
    """compose's health check command, with the test server's port."""
    command = llm_service()["healthcheck"]["test"]
    assert command[:2] == ["CMD", "python"]
    port = urlsplit(healthcheck_url(llm_service())).port
    args = [arg.replace(f":{port}/", f":{server.port}/") for arg in command[2:]]
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=10)


def answer_while(server: ModelServer, probe: Any) -> tuple[tuple[int, str | None], Any]:
    """Stream an answer and run ``probe`` once it is under way; (answer, probe's result)."""
    result: dict[str, tuple[int, str | None]] = {}
    thread = threading.Thread(target=lambda: result.update(answer=server.stream_answer(200)))
    thread.start()
    time.sleep(0.5)
    probed = probe()
    thread.join(timeout=90)
    return result["answer"], probed


@needs_model
def test_probe_answers_without_key_and_while_answering(model_server: ModelServer) -> None:
    """The probe path needs no key and answers at once during an answer, which it leaves whole."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(model_server.url("/v1/models"), timeout=5)
    assert refused.value.code == 401, "the key is required where it is set"

    def probe() -> tuple[float, int]:
        started = time.monotonic()
        check = run_healthcheck(model_server)
        return time.monotonic() - started, check.returncode

    (chunks, finish), (elapsed_s, code) = answer_while(model_server, probe)
    assert code == 0
    assert elapsed_s < 3.0, "the health check waited for the answer"
    assert finish in ("length", "stop") and chunks > 0, "the answer was cut short"


@needs_model
@pytest.mark.parametrize("model_server", [True], indirect=True)
def test_llama_server_cuts_answers_without_the_switch(model_server: ModelServer) -> None:
    """Left to itself, llama.cpp's server ends the running answer when any request arrives."""

    def other_request() -> int:
        request = urllib.request.Request(
            model_server.url("/v1/models"),
            headers={"Authorization": f"Bearer {model_server.key}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)

    (_, finish), status = answer_while(model_server, other_request)
    assert status == 200
    assert finish is None, "llama.cpp no longer cuts answers: INTERRUPT_REQUESTS may go"
