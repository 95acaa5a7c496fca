"""The deployment files agree with the code: env names, ports, probe paths, drain, scaling.

Each test reads the settings, routes or measured figures from the code (or from
docs/benchmarks.md) rather than repeating them, so a change on either side that breaks
the other fails here.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route

from core.settings import AuthSettings, Settings, env_names
from server import http, ui
from server.app import create_app, create_metrics_app
from server.healthcheck import LIVE_PATH, WORKER_METRICS_PORT
from server.runtime import Runtime
from tests.deploy.files import (
    APP_SERVICES,
    BENCHMARKS,
    COMPOSE,
    ENV_EXAMPLE,
    KUSTOMIZATION,
    LLM_SERVICE,
    NGINX_CONF,
    PROMETHEUS,
    app_containers,
    compose,
    compose_interpolated_names,
    config_map_data,
    container,
    dockerfile_stages,
    duration_s,
    env_file_entries,
    example_secret_data,
    k8s_object,
    k8s_objects,
    load_yaml,
    nginx_config,
    pod_specs,
    quantity_bytes,
    quantity_millicores,
    service_env_names,
    service_env_values,
)

COMPOSE_ONLY_NAMES = frozenset(
    {"POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "LOCAL_MODELS_DIR", "LOCAL_MODEL_MEMORY"}
)
# Variables docker compose itself reads from .env.
COMPOSE_OWN_NAMES = frozenset({"COMPOSE_PROFILES"})

SERVER = "livetutor-server"
WORKER = "livetutor-worker"
BEAT = "livetutor-beat"
PROMETHEUS_ANNOTATIONS = ("prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path")


def known_names() -> set[str]:
    return set(env_names())


def k8s_settings() -> Settings:
    """Settings as a server pod parses them from the ConfigMap and the example Secret."""
    return Settings.from_env({**config_map_data(), **example_secret_data()})


def route_path(endpoint: Callable[..., Any], tmp_path: Path) -> str:
    """The path the app serves ``endpoint`` on."""
    settings = Settings(data_dir=tmp_path, auth=AuthSettings(jwt_secret="s" * 40))
    paths = [
        r.path
        for r in create_app(settings).routes
        if isinstance(r, Route) and r.endpoint is endpoint
    ]
    assert len(paths) == 1, f"{endpoint.__name__} served on {paths}"
    return paths[0]


def metrics_path(tmp_path: Path) -> str:
    """The path the metrics listener serves ``GET /metrics`` on."""
    settings = Settings(data_dir=tmp_path, auth=AuthSettings(jwt_secret="s" * 40))
    app = create_metrics_app(Runtime(settings))
    [path] = [r.path for r in app.routes if isinstance(r, Route) and r.endpoint is http.metrics]
    return path


def ports_by_name(spec: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])}


def pod_template(workload: str) -> dict[str, Any]:
    for obj in k8s_objects():
        if obj["kind"] in ("Deployment", "StatefulSet") and obj["metadata"]["name"] == workload:
            template: dict[str, Any] = obj["spec"]["template"]
            return template
    raise AssertionError(f"no workload {workload}")


# -- environment variable names -------------------------------------------------------------


def dockerfile_env() -> dict[str, str]:
    """Variables the image sets (ENV NAME=value ...)."""
    pairs = " ".join(dockerfile_stages()[-1].arguments("ENV")).split()
    return dict(pair.split("=", 1) for pair in pairs)


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_env_names_are_settings(service: str) -> None:
    """Every variable compose gives the LiveTutor image is one its settings read."""
    names = service_env_names(compose()["services"][service])
    assert names, f"{service} sets no environment"
    assert set(names) - known_names() == set()


def test_image_env_names_are_settings() -> None:
    """Every LIVETUTOR_ variable the image sets is a setting."""
    names = {name for name in dockerfile_env() if name.startswith("LIVETUTOR_")}
    assert names
    assert names - known_names() == set()


def test_image_serves_the_ui_it_builds() -> None:
    """LIVETUTOR_UI_DIR in the image is where the frontend stage's build is copied."""
    copies = [c.split() for c in dockerfile_stages()[-1].arguments("COPY")]
    [destination] = [c[-1] for c in copies if c[0] == "--from=frontend"]
    assert dockerfile_env()["LIVETUTOR_UI_DIR"] == destination


def test_env_example_names_are_settings_or_compose_only() -> None:
    """Every .env.example entry is a LiveTutor setting or one compose gives another image."""
    names = set(env_file_entries(ENV_EXAMPLE))
    assert names - known_names() - COMPOSE_ONLY_NAMES - COMPOSE_OWN_NAMES == set()


def test_env_example_entries_reach_the_stack() -> None:
    """Each .env.example entry, set or commented out, is used by docker-compose.yml."""
    used = compose_interpolated_names() | COMPOSE_OWN_NAMES
    for service in (*APP_SERVICES, LLM_SERVICE):
        used |= set(service_env_names(compose()["services"][service]))
    assert set(env_file_entries(ENV_EXAMPLE)) - used == set()


def test_env_example_defaults_parse() -> None:
    """The values .env.example sets are accepted by the server's settings parser."""
    entries = env_file_entries(ENV_EXAMPLE, commented=False)
    settings = Settings.from_env({k: v for k, v in entries.items() if v})
    assert settings.drain_s == float(entries["LIVETUTOR_DRAIN_S"])


def test_k8s_env_names_are_settings() -> None:
    """ConfigMap keys, Secret keys and container env names of the LiveTutor pods are settings."""
    names = set(config_map_data()) | set(example_secret_data())
    for _, app in app_containers():
        names |= {entry["name"] for entry in app.get("env", [])}
    assert names - known_names() == set()


def test_k8s_config_parses() -> None:
    """The ConfigMap and Secret values are accepted by the server's settings parser."""
    settings = k8s_settings()
    assert settings.host == "0.0.0.0"
    assert settings.redis.enabled


def test_k8s_references_exist() -> None:
    """Every ConfigMap and Secret a container reads exists, with every key it names."""
    maps = {"livetutor-config": config_map_data()}
    secrets = {
        "livetutor-secrets": example_secret_data(),
        "postgres-credentials": example_secret_data("postgres-credentials"),
    }
    for workload, spec in pod_specs():
        for c in spec["containers"]:
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in maps, workload
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, workload
            for entry in c.get("env", []):
                ref = entry.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    key_ref = ref["configMapKeyRef"]
                    assert key_ref["key"] in maps[key_ref["name"]], (workload, key_ref)
                if "secretKeyRef" in ref:
                    key_ref = ref["secretKeyRef"]
                    assert key_ref["key"] in secrets[key_ref["name"]], (workload, key_ref)


def test_every_object_is_in_the_namespace() -> None:
    """Every namespaced object names the kustomization's namespace."""
    namespace = load_yaml(KUSTOMIZATION)["namespace"]
    for obj in k8s_objects():
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == namespace, obj["metadata"]["name"]


# -- ports ----------------------------------------------------------------------------------


def test_server_port_matches_settings() -> None:
    """Container port, Service, image and compose all use the server's port."""
    port = k8s_settings().port
    assert port == Settings().port == 8000
    template = pod_template(SERVER)
    assert ports_by_name(template["spec"])["http"] == port
    service = k8s_object("Service", SERVER)
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(port, "http")]
    runtime = dockerfile_stages()[-1]
    assert str(port) in " ".join(runtime.arguments("EXPOSE")).split()
    assert f"LIVETUTOR_PORT={port}" in " ".join(runtime.arguments("ENV")).split()
    assert compose()["services"]["server"]["expose"][0] == str(port)
    assert service_env_values(compose()["services"]["server"])["LIVETUTOR_PORT"] == str(port)


def test_proxies_reach_the_server_port() -> None:
    """nginx proxies to the compose service `server` on its port (never the metrics port)."""
    port = Settings().port
    server_block = nginx_config().block("http").block("server")
    assert server_block.values("set") == [["$livetutor_upstream", f"http://server:{port}"]]


def test_server_metrics_port_matches() -> None:
    """The server's metrics port agrees across settings, ConfigMap, pod, annotation and compose."""
    port = k8s_settings().metrics_port
    assert port == Settings().metrics_port == 9807
    template = pod_template(SERVER)
    assert ports_by_name(template["spec"]) == {"http": Settings().port, "metrics": port}
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    service = k8s_object("Service", SERVER)
    assert port not in {p["port"] for p in service["spec"]["ports"]}
    assert str(port) in " ".join(dockerfile_stages()[-1].arguments("EXPOSE")).split()
    server = compose()["services"]["server"]
    assert str(port) in server["expose"]
    assert service_env_values(server)["LIVETUTOR_METRICS_PORT"] == str(port)
    assert compose_scrape_ports()[("server",)] == port


def test_only_prometheus_reaches_the_metrics_port() -> None:
    """The ingress controller may reach the server's HTTP port; only Prometheus its metrics."""
    policy = k8s_object("NetworkPolicy", "server-ingress")
    reach: dict[str, set[int]] = {}
    for rule in policy["spec"]["ingress"]:
        for peer in rule["from"]:
            namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            reach.setdefault(namespace, set()).update(p["port"] for p in rule["ports"])
    settings = k8s_settings()
    assert reach == {"ingress-nginx": {settings.port}, "monitoring": {settings.metrics_port}}


def compose_scrape_ports() -> dict[tuple[str, ...], int]:
    """Port of each compose service name Prometheus resolves by DNS."""
    jobs = load_yaml(PROMETHEUS)["scrape_configs"]
    dns = [sd for job in jobs for sd in job.get("dns_sd_configs", [])]
    return {tuple(sd["names"]): sd["port"] for sd in dns}


def test_worker_metrics_port_matches() -> None:
    """The worker's metrics port agrees across ConfigMap, pod, annotations, image and compose."""
    port = int(config_map_data()["LIVETUTOR_WORKER_METRICS_PORT"])
    assert port == WORKER_METRICS_PORT
    template = pod_template(WORKER)
    assert ports_by_name(template["spec"]) == {"metrics": port}
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert str(port) in " ".join(dockerfile_stages()[-1].arguments("EXPOSE")).split()
    worker = compose()["services"]["worker"]
    assert worker["expose"] == [str(port)]
    assert service_env_values(worker)["LIVETUTOR_WORKER_METRICS_PORT"] == str(port)
    # Prometheus's compose job for the workers, where there is one, scrapes that port.
    assert compose_scrape_ports().get(("worker",), port) == port


def test_network_policy_ports_match_the_pods() -> None:
    """Each port a NetworkPolicy opens to a pod is a port that pod listens on."""
    listening: dict[str, set[int]] = {}
    for obj in k8s_objects():
        if obj["kind"] in ("Deployment", "StatefulSet"):
            spec = obj["spec"]["template"]
            name = spec["metadata"]["labels"]["app.kubernetes.io/name"]
            listening.setdefault(name, set()).update(ports_by_name(spec["spec"]).values())
    for policy in (o for o in k8s_objects() if o["kind"] == "NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            for peer in rule["to"]:
                name = (
                    peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
                )
                if name and "namespaceSelector" not in peer:
                    ports = {p["port"] for p in rule["ports"]}
                    assert ports <= listening[name], (policy["metadata"]["name"], name, ports)
        target = policy["spec"]["podSelector"].get("matchLabels", {})
        for rule in policy["spec"].get("ingress", []):
            ports = {p["port"] for p in rule["ports"]}
            assert ports <= listening[target["app.kubernetes.io/name"]], policy["metadata"]


def test_server_egress_is_limited() -> None:
    """Server pods reach only Redis, Postgres, chromadb, DNS and HTTPS outside the cluster."""
    policy = k8s_object("NetworkPolicy", "server-egress")
    peers: set[str] = set()
    for rule in policy["spec"]["egress"]:
        for peer in rule["to"]:
            if "ipBlock" in peer:
                assert {p["port"] for p in rule["ports"]} == {443}
                assert "10.0.0.0/8" in peer["ipBlock"]["except"]
                peers.add("outside:443")
            else:
                peers.add(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
    assert peers == {"redis", "postgres", "chromadb", "outside:443"}
    deny = k8s_object("NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


# -- probes and paths -----------------------------------------------------------------------


def test_probe_paths_are_the_health_routes(tmp_path: Path) -> None:
    """Readiness asks /health/ready, liveness and start-up /health/live: the app's routes."""
    ready, live = route_path(http.ready, tmp_path), route_path(http.live, tmp_path)
    server = container(SERVER, "server")
    assert server["readinessProbe"]["httpGet"] == {"path": ready, "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": live, "port": "http"}
    assert server["startupProbe"]["httpGet"] == {"path": live, "port": "http"}
    assert live == LIVE_PATH


def test_metrics_annotations_match_scrape_config(tmp_path: Path) -> None:
    """Server and worker pods carry the annotations Prometheus's pod job keeps and reads."""
    metrics = metrics_path(tmp_path)
    for workload in (SERVER, WORKER):
        annotations = pod_template(workload)["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == metrics
    job = next(j for j in load_yaml(PROMETHEUS)["scrape_configs"] if "kubernetes_sd_configs" in j)
    assert job["metrics_path"] == metrics
    relabels = {tuple(r.get("source_labels", [])): r for r in job["relabel_configs"]}
    keep = relabels[("__meta_kubernetes_pod_annotation_prometheus_io_scrape",)]
    assert (keep["action"], keep["regex"]) == ("keep", "true")
    port_rule = ("__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port")
    assert relabels[port_rule]["target_label"] == "__address__"


def test_nginx_hides_metrics(tmp_path: Path) -> None:
    """nginx answers /metrics itself: metrics are scraped per replica, not published."""
    server_block = nginx_config().block("http").block("server")
    location = server_block.block("location", "=", metrics_path(tmp_path))
    assert location.values("return") == [["404"]]


# -- drain and shutdown ---------------------------------------------------------------------


def test_termination_grace_covers_the_drain() -> None:
    """Kubernetes waits longer than preStop + drain + close before killing a server pod."""
    settings = k8s_settings()
    spec = pod_template(SERVER)["spec"]
    server = container(SERVER, "server")
    command = server["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop_s = float(command[1])
    assert pre_stop_s == 5
    needed_s = pre_stop_s + settings.drain_s + settings.ws.close_timeout_s
    assert spec["terminationGracePeriodSeconds"] > needed_s
    assert settings.drain_s > Settings().drain_s, "drain long enough for a typical answer"


def test_compose_stop_grace_covers_the_drain() -> None:
    """docker compose waits longer than drain + close before killing a server container."""
    entries = env_file_entries(ENV_EXAMPLE, commented=False)
    settings = Settings.from_env({"LIVETUTOR_DRAIN_S": entries["LIVETUTOR_DRAIN_S"]})
    compose_default = re.search(
        r"LIVETUTOR_DRAIN_S=\$\{LIVETUTOR_DRAIN_S:-(\d+)\}", COMPOSE.read_text()
    )
    assert compose_default and float(compose_default.group(1)) == settings.drain_s
    grace_s = duration_s(compose()["services"]["server"]["stop_grace_period"])
    assert grace_s > settings.drain_s + settings.ws.close_timeout_s


def test_rollouts_keep_capacity() -> None:
    """A rollout starts new server pods before stopping old ones."""
    strategy = k8s_object("Deployment", SERVER)["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_nginx_outlasts_the_server_timeouts() -> None:
    """nginx keeps /ws open longer than the server's own idle timeout and heartbeat."""
    settings = Settings()
    ws = nginx_config().block("http").block("server").block("location", "=", "/ws")
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        [[value]] = ws.values(directive)
        assert duration_s(value) > settings.ws.idle_timeout_s
        assert duration_s(value) > settings.ws.heartbeat_s
    annotations = k8s_object("Ingress", "livetutor")["metadata"]["annotations"]
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{key}"]) > settings.ws.idle_timeout_s


# -- scaling --------------------------------------------------------------------------------


def test_hpa_settings() -> None:
    """The HPA keeps 2 to 10 server pods at 70% CPU and 80% memory, up at once, down after 300 s."""
    hpa = k8s_object("HorizontalPodAutoscaler", SERVER)["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": SERVER}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 70},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    assert hpa["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    replicas = k8s_object("Deployment", SERVER)["spec"]["replicas"]
    assert replicas == 3
    assert hpa["minReplicas"] <= replicas <= hpa["maxReplicas"]


def test_server_resources() -> None:
    """Server pods request 500m CPU and 512Mi, and are limited to 1000m and 1280Mi."""
    resources = container(SERVER, "server")["resources"]
    assert quantity_millicores(resources["requests"]["cpu"]) == 500
    assert quantity_bytes(resources["requests"]["memory"]) == 512 * 2**20
    assert quantity_millicores(resources["limits"]["cpu"]) == 1000
    assert quantity_bytes(resources["limits"]["memory"]) == 1280 * 2**20


def measured_idle_connections() -> tuple[int, float, float]:
    """(connections, RSS before in bytes, bytes per connection) of the latest benchmark."""
    match = re.search(
        r"^LiveTutor\s+([\d,]+)\s+\d+\s+[\d.]+\s+([\d.]+)\s+[\d.]+\s+[\d,]+\s+([\d.]+)\s*$",
        BENCHMARKS.read_text(encoding="utf-8"),
        re.M,
    )
    assert match, "idle-connection figures not found in docs/benchmarks.md"
    count = int(match.group(1).replace(",", ""))
    return count, float(match.group(2)) * 2**20, float(match.group(3)) * 2**10


def test_a_full_pod_fits_its_memory_limit() -> None:
    """At LIVETUTOR_MAX_CONNECTIONS idle sockets a pod uses under 3/4 of its memory limit."""
    max_connections = k8s_settings().ws.max_connections
    measured, base_bytes, per_connection = measured_idle_connections()
    assert measured >= max_connections, "the benchmark covers the configured maximum"
    limit = quantity_bytes(container(SERVER, "server")["resources"]["limits"]["memory"])
    assert base_bytes + max_connections * per_connection < 0.75 * limit


def test_a_full_pod_with_a_full_cache_stays_below_the_memory_alert() -> None:
    """With every connection open and the L1 cache full, a pod stays under the 90% memory alert."""
    settings = k8s_settings()
    _, base_bytes, per_connection = measured_idle_connections()
    connections = settings.ws.max_connections * per_connection
    cache = settings.cache.l1_size * settings.cache.max_value_bytes
    limit = quantity_bytes(container(SERVER, "server")["resources"]["limits"]["memory"])
    assert base_bytes + connections + cache < 0.9 * limit


def test_memory_scaling_starts_before_pods_near_capacity() -> None:
    """The HPA's memory target is reached before a pod holds 85% of its connections."""
    max_connections = k8s_settings().ws.max_connections
    _, base_bytes, per_connection = measured_idle_connections()
    hpa = k8s_object("HorizontalPodAutoscaler", SERVER)["spec"]
    target = next(m for m in hpa["metrics"] if m["resource"]["name"] == "memory")
    request = quantity_bytes(container(SERVER, "server")["resources"]["requests"]["memory"])
    threshold = target["resource"]["target"]["averageUtilization"] / 100 * request
    # 85%: the ConnectionsNearCapacity alert in monitoring/alerts.yml.
    assert threshold < base_bytes + 0.85 * max_connections * per_connection


def test_worker_memory_covers_its_pdf_parsers() -> None:
    """A worker's memory limit holds its concurrent PDF parsers at their limit, plus 1 GiB."""
    config = config_map_data()
    parsers = int(config["LIVETUTOR_WORKER_CONCURRENCY"])
    parser_bytes = int(config["LIVETUTOR_EXTRACT_MEMORY_BYTES"])
    limit = quantity_bytes(container(WORKER, "worker")["resources"]["limits"]["memory"])
    assert parsers * parser_bytes + 2**30 <= limit


def test_proxies_accept_the_largest_upload() -> None:
    """nginx and the Ingress accept a PDF of LIVETUTOR_MAX_UPLOAD_BYTES with room for its form."""
    max_upload = int(config_map_data()["LIVETUTOR_MAX_UPLOAD_BYTES"])
    [[nginx_limit]] = nginx_config().block("http").block("server").values("client_max_body_size")
    annotations = k8s_object("Ingress", "livetutor")["metadata"]["annotations"]
    ingress_limit = annotations["nginx.ingress.kubernetes.io/proxy-body-size"]
    for limit in (nginx_limit, ingress_limit):
        assert limit.endswith("m")
        assert int(limit[:-1]) * 2**20 >= max_upload + 64 * 1024


def test_postgres_takes_every_pool_at_full_scale() -> None:
    """Postgres accepts the pools of the HPA's most server pods and of every worker."""
    args = container("postgres", "postgres")["args"]
    max_connections = int(args[args.index("-c") + 1].removeprefix("max_connections="))
    pool_max = k8s_settings().store.pool_max
    servers = k8s_object("HorizontalPodAutoscaler", SERVER)["spec"]["maxReplicas"]
    workers = k8s_object("Deployment", WORKER)["spec"]["replicas"]
    # Superuser sessions (backups, psql) keep 3 slots of their own.
    assert (servers + workers) * pool_max <= max_connections - 3


def test_disruption_budget_keeps_pods_serving() -> None:
    """Voluntary disruptions take one server pod at a time, never all of the minimum."""
    pdb = k8s_object("PodDisruptionBudget", SERVER)["spec"]
    labels = pod_template(SERVER)["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["maxUnavailable"] == 1
    assert (
        pdb["maxUnavailable"] < k8s_object("HorizontalPodAutoscaler", SERVER)["spec"]["minReplicas"]
    )


def test_service_selects_only_server_pods() -> None:
    """The server Service and PDB select server pods and neither worker nor beat pods."""
    selector = k8s_object("Service", SERVER)["spec"]["selector"]
    assert selector.items() <= pod_template(SERVER)["metadata"]["labels"].items()
    for other in (WORKER, BEAT):
        assert not selector.items() <= pod_template(other)["metadata"]["labels"].items()
    ingress = k8s_object("Ingress", "livetutor")["spec"]
    backend = ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": SERVER, "port": {"name": "http"}}
    assert ingress["tls"][0]["hosts"] == [ingress["rules"][0]["host"]]


def test_chromadb_server_matches_the_client() -> None:
    """The chromadb server image is the release line of the chromadb client installed."""
    client = importlib.metadata.version("chromadb")
    images = [compose()["services"]["chromadb"]["image"]]
    images.append(container("chromadb", "chromadb")["image"])
    for image in images:
        server = image.split(":")[1]
        assert server.split(".")[:2] == client.split(".")[:2], (image, client)


def test_one_beat() -> None:
    """Beat runs as exactly one pod (Recreate) and one compose container."""
    beat = k8s_object("Deployment", BEAT)["spec"]
    assert beat["replicas"] == 1
    assert beat["strategy"]["type"] == "Recreate"
    assert compose()["services"]["beat"]["deploy"]["replicas"] == 1


def redis_maxmemory(args: str) -> tuple[int, str]:
    """The --maxmemory (in bytes) and --maxmemory-policy a Redis command line sets."""
    memory = re.search(r"--maxmemory (\d+)mb", args)
    policy = re.search(r"--maxmemory-policy (\S+)", args)
    assert memory and policy, f"no maxmemory settings in {args!r}"
    return int(memory.group(1)) * 2**20, policy.group(1)


def test_redis_evicts_before_it_is_killed() -> None:
    """Redis evicts below its memory limit, and only keys with a TTL (never Celery's queues)."""
    scripts = k8s_object("ConfigMap", "redis-scripts")["data"]
    maxmemory, policy = redis_maxmemory(scripts["redis.sh"])
    limit = quantity_bytes(container("redis", "redis")["resources"]["limits"]["memory"])
    # Replication buffers and fork copy-on-write for the AOF rewrite need the rest.
    assert maxmemory <= 0.75 * limit
    assert policy.startswith("volatile-")
    for service in ("redis-master", "redis-replica"):
        assert redis_maxmemory(" ".join(compose()["services"][service]["command"])) == (
            maxmemory,
            policy,
        )


def test_sentinels_match_the_statefulset() -> None:
    """REDIS_SENTINELS lists the Sentinel of each Redis pod, three in all."""
    redis = k8s_object("StatefulSet", "redis")["spec"]
    assert redis["replicas"] == 3
    expected = [
        f"redis-{i}.{redis['serviceName']}:{ports_by_name(redis['template']['spec'])['sentinel']}"
        for i in range(redis["replicas"])
    ]
    assert list(k8s_settings().redis.sentinels) == expected
    headless = k8s_object("Service", redis["serviceName"])["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True


def test_compose_sentinels_are_services() -> None:
    """compose's REDIS_SENTINELS names three Sentinel services of the stack."""
    services = compose()["services"]
    sentinels = service_env_values(services["server"])["REDIS_SENTINELS"].split(",")
    assert len(sentinels) == 3
    for address in sentinels:
        host, port = address.split(":")
        assert "--sentinel" in " ".join(services[host]["command"]), host
        assert port == "26379"


# -- security -------------------------------------------------------------------------------


def test_every_container_is_locked_down() -> None:
    """Every pod runs as non-root with a read-only root file system and no privileges."""
    for workload, spec in pod_specs():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, workload
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, workload
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, (workload, c["name"])
            assert sc["allowPrivilegeEscalation"] is False, (workload, c["name"])
            assert sc["capabilities"] == {"drop": ["ALL"]}, (workload, c["name"])


def test_app_pods_can_write_where_they_need() -> None:
    """LiveTutor pods run as the image's user, with emptyDirs at the data dir and /tmp."""
    data_dir = str(k8s_settings().data_dir)
    runtime = dockerfile_stages()[-1]
    [user] = runtime.arguments("USER")
    uid = int(user.split(":")[0])
    for workload, spec in pod_specs():
        for c in spec["containers"]:
            if c["image"].split(":")[0] != "livetutor":
                continue
            assert spec["securityContext"]["runAsUser"] == uid, workload
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            volumes = {v["name"]: v for v in spec["volumes"]}
            for path in (data_dir, "/tmp"):
                assert "emptyDir" in volumes[mounts[path]], (workload, path)


def test_nginx_forwards_and_upgrades() -> None:
    """Every proxied location forwards the client's address; /ws also upgrades the connection."""
    server_block = nginx_config().block("http").block("server")
    assert server_block.values("proxy_http_version") == [["1.1"]]
    proxied = [b for b in server_block.blocks if b.values("proxy_pass")]
    assert {tuple(b.args) for b in proxied} == {("=", "/ws"), ("/",)}
    for location in proxied:
        headers = {args[0]: args[1] for args in location.values("proxy_set_header")}
        assert headers["Host"] == "$host"
        assert headers["X-Forwarded-For"] == "$proxy_add_x_forwarded_for"
        assert location.values("limit_req"), f"location {location.args} is not rate limited"
    ws = server_block.block("location", "=", "/ws")
    headers = {args[0]: args[1] for args in ws.values("proxy_set_header")}
    assert headers["Upgrade"] == "$http_upgrade"
    assert headers["Connection"] == "$connection_upgrade"
    assert ws.values("limit_conn")


def test_nginx_security_headers_on_every_response() -> None:
    """CSP with frame-ancestors 'none' and nosniff are sent always, and no location drops them."""
    server_block = nginx_config().block("http").block("server")
    headers = {args[0]: args[1:] for args in server_block.values("add_header")}
    csp, always = headers["Content-Security-Policy"]
    assert always == "always"
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'self'" in csp
    assert headers["X-Content-Type-Options"] == ["nosniff", "always"]
    # add_header in a location would replace, not add to, the server's headers.
    assert [b.args for b in server_block.blocks if b.values("add_header")] == []
    # The server's own copies are hidden, so that each header is sent once.
    hidden = {args[0].lower() for args in server_block.values("proxy_hide_header")}
    assert {"content-security-policy", "x-content-type-options"} <= hidden


def test_nginx_csp_is_the_servers() -> None:
    """nginx sends the Content-Security-Policy the server gives its own pages."""
    server_block = nginx_config().block("http").block("server")
    headers = {args[0]: args[1:] for args in server_block.values("add_header")}
    assert headers["Content-Security-Policy"][0] == ui.CSP


def test_compose_app_containers_are_read_only() -> None:
    """compose runs the LiveTutor image read-only with a data volume, like Kubernetes."""
    settings = Settings.from_env(service_env_values(compose()["services"]["server"]))
    for name in APP_SERVICES:
        service = compose()["services"][name]
        assert service["read_only"] is True, name
        assert any(v.split(":")[1] == str(settings.data_dir) for v in service["volumes"]), name
        assert service["tmpfs"] == ["/tmp"], name


def test_nginx_config_path_is_mounted() -> None:
    """compose mounts deploy/nginx/nginx.conf as nginx's configuration."""
    volumes = compose()["services"]["nginx"]["volumes"]
    relative = NGINX_CONF.relative_to(COMPOSE.parent)
    assert f"./{relative}:/etc/nginx/nginx.conf:ro" in volumes
