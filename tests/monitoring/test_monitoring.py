"""The monitoring files: promtool validates them and the server exports what they query.

promtool comes from Debian's ``prometheus`` package (``scripts/test.sh`` installs it). A
missing promtool fails these tests rather than skipping them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
CONFIG = MONITORING / "prometheus.yml"
RULES = MONITORING / "alerts.yml"
RULE_TESTS = MONITORING / "alerts_test.yml"
DASHBOARDS = MONITORING / "grafana" / "dashboards"
PROVISIONING = MONITORING / "grafana" / "provisioning"

PROMTOOL_TIMEOUT_S = 60.0
SEVERITIES = {"page", "ticket"}
# Series from kube-state-metrics and cAdvisor, which every Kubernetes cluster scrapes.
EXTERNAL_PREFIXES = ("kube_", "container_")
KUBERNETES_ROLES = {"node", "service", "pod", "endpoints", "endpointslice", "ingress"}
KUBERNETES_SD_KEYS = {
    "role",
    "namespaces",
    "selectors",
    "attach_metadata",
    "api_server",
    "kubeconfig_file",
    "authorization",
    "basic_auth",
    "oauth2",
    "tls_config",
    "proxy_url",
    "follow_redirects",
    "enable_http2",
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    groups = load_yaml(RULES)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboards() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


# -- promtool ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    """The promtool binary, or a failure that says how to install it."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed; scripts/test.sh installs it "
            "(Debian: apt-get install --no-install-recommends prometheus)",
            pytrace=False,
        )
    return path


def run_promtool(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(result.args)} failed:\n{output}"


@pytest.fixture(scope="module")
def kubernetes_sd_supported(promtool: str, tmp_path_factory: pytest.TempPathFactory) -> bool:
    """Whether this promtool knows kubernetes_sd_configs (Debian builds it without)."""
    probe = tmp_path_factory.mktemp("promtool") / "probe.yml"
    probe.write_text(
        json.dumps(
            {"scrape_configs": [{"job_name": "p", "kubernetes_sd_configs": [{"role": "pod"}]}]}
        )
    )
    return run_promtool(promtool, "check", "config", probe).returncode == 0


def without_kubernetes_sd(config: dict[str, Any]) -> dict[str, Any]:
    """The config with static targets in place of Kubernetes discovery, which is checked here.

    Everything else, the relabelling of the Kubernetes jobs included, stays for promtool.
    Rule files become absolute so that they resolve from wherever the copy is written.
    """
    for job in config["scrape_configs"]:
        sd_configs = job.pop("kubernetes_sd_configs", None)
        if sd_configs is None:
            continue
        for sd in sd_configs:
            assert sd.get("role") in KUBERNETES_ROLES, f"{job['job_name']}: bad role {sd}"
            unknown = set(sd) - KUBERNETES_SD_KEYS
            assert not unknown, f"{job['job_name']}: unknown kubernetes_sd_configs keys {unknown}"
        job.setdefault("static_configs", []).append({"targets": ["kubernetes-sd.invalid:80"]})
    config["rule_files"] = [str(CONFIG.parent / name) for name in config.get("rule_files", [])]
    return config


def test_prometheus_config_is_valid(
    promtool: str, kubernetes_sd_supported: bool, tmp_path: Path
) -> None:
    """promtool accepts prometheus.yml, and the rule files it names exist and are valid."""
    if kubernetes_sd_supported:
        assert_ok(run_promtool(promtool, "check", "config", CONFIG))
        return
    for name in load_yaml(CONFIG).get("rule_files", []):
        assert (CONFIG.parent / name).is_file(), f"rule file {name} does not resolve"
    checked = tmp_path / CONFIG.name
    # JSON is YAML, and PyYAML's dump would reflow the relabelling regexes for no gain.
    checked.write_text(json.dumps(without_kubernetes_sd(load_yaml(CONFIG))))
    assert_ok(run_promtool(promtool, "check", "config", checked))


def test_prometheus_config_scrapes_pods_and_compose() -> None:
    """One job keeps annotated Kubernetes pods, the other resolves server's metrics port by DNS."""
    jobs = load_yaml(CONFIG)["scrape_configs"]
    kubernetes = [job for job in jobs if "kubernetes_sd_configs" in job]
    dns = [job for job in jobs if "dns_sd_configs" in job]
    assert [sd["role"] for job in kubernetes for sd in job["kubernetes_sd_configs"]] == ["pod"]
    keep = kubernetes[0]["relabel_configs"][0]
    assert keep["action"] == "keep"
    assert keep["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
    assert [(sd["names"], sd["type"], sd["port"]) for sd in dns[0]["dns_sd_configs"]] == [
        (["server"], "A", Settings().metrics_port)
    ]
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in jobs)


def test_rules_are_valid(promtool: str) -> None:
    """promtool check rules accepts alerts.yml."""
    assert_ok(run_promtool(promtool, "check", "rules", RULES))


def test_rule_unit_tests_pass(promtool: str) -> None:
    """promtool test rules passes alerts_test.yml."""
    assert_ok(run_promtool(promtool, "test", "rules", RULE_TESTS))


# -- rules ------------------------------------------------------------------------------


def test_every_rule_is_tested_firing_and_silent() -> None:
    """Each alert has a unit test where it fires and one where it stays silent."""
    fires: set[str] = set()
    silent: set[str] = set()
    for case in load_yaml(RULE_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested silent"


def test_every_rule_has_severity_summary_and_runbook() -> None:
    """Each alert is labelled page or ticket and carries summary, description and runbook."""
    for rule in alert_rules():
        assert rule.get("labels", {}).get("severity") in SEVERITIES, rule["alert"]
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook"):
            assert annotations.get(key), f"{rule['alert']} has no {key}"


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of ``markdown`` (code blocks skipped)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        match = re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)
        if fenced or not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_github_anchors() -> None:
    """Anchors are lowercased, punctuation dropped, spaces hyphenated, repeats numbered."""
    markdown = "# Operations\n## Shutdown and upgrades, without `lost` answers\n"
    markdown += "```sh\n# not a heading\n```\n### HighErrorRate\n### HighErrorRate\n"
    assert github_anchors(markdown) == {
        "operations",
        "shutdown-and-upgrades-without-lost-answers",
        "higherrorrate",
        "higherrorrate-1",
    }


def test_runbook_anchors_exist() -> None:
    """Each runbook link names a file in the repository and a heading in it."""
    for rule in alert_rules():
        path, _, anchor = rule["annotations"]["runbook"].partition("#")
        document = ROOT / path
        assert document.is_file(), f"{rule['alert']}: runbook {path} does not exist"
        anchors = github_anchors(document.read_text(encoding="utf-8"))
        assert anchor in anchors, f"{rule['alert']}: no heading with anchor #{anchor} in {path}"


# -- metric names -----------------------------------------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_GRAFANA_VARIABLES = re.compile(r"\$\{[^}]*\}|\$\w+")
_LABEL_VALUES = re.compile(r"\blabel_values\s*\(\s*([^,()]*?)\s*(?:,[^()]*)?\)")
_TOKENS = re.compile(r"[A-Za-z_:][\w:]*|\d[\w.]*")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "atan2",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or Grafana ``label_values`` query) reads."""
    text = _STRINGS.sub(" ", expr)
    text = _GRAFANA_VARIABLES.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    text = _LABEL_VALUES.sub(r" \1 ", text)
    names = set()
    for token in _TOKENS.finditer(text):
        name = token.group()
        if name[0].isdigit() or name.lower() in _KEYWORDS:
            continue
        if text[token.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        names.add(name)
    return names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum(rate(a_total{status=~"5.."}[5m])) / sum(rate(a_total[5m])) > 0.05',
            {"a_total"},
        ),
        (
            "histogram_quantile(0.95, sum by (le) "
            '(rate(b_bucket{instance=~"$instance"}[$__rate_interval])))',
            {"b_bucket"},
        ),
        ("sum(c) by (pod) / on (pod) group_left(node) d offset 5m > bool 1e-3", {"c", "d"}),
        ("max by (provider) (max_over_time(e[1m])) == 2 unless on() vector(1)", {"e"}),
        ("label_values(f, instance)", {"f"}),
        ('g{le="+Inf", route!~"/health/.*|/metrics"} and h', {"g", "h"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    """Metric names are found; functions, labels, strings, numbers and variables are not."""
    assert metric_names(expr) == names


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, query) for every panel target, nested panels and variables included."""

    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield f"panel {panel.get('title')!r}", target["expr"]
            yield from walk(panel.get("panels", []))

    yield from walk(dashboard.get("panels", []))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if variable.get("type") == "query":
            text = query.get("query", "") if isinstance(query, dict) else query
            yield f"variable {variable['name']!r}", text


@pytest.fixture(scope="module")
def server_metric_names() -> set[str]:
    """Every sample name the server and its Celery workers export, read from their registries."""
    from core import metrics
    from tasks import metrics as worker_metrics

    names: set[str] = metrics.exported_names()
    assert names, "core.metrics.exported_names() is empty"
    worker_names: set[str] = worker_metrics.exported_names()
    assert "celery_dead_letters" in worker_names
    return names | worker_names


def unknown_metrics(queries: list[tuple[str, str]], exported: set[str]) -> list[str]:
    return sorted(
        f"{where}: {name}"
        for where, expr in queries
        for name in metric_names(expr)
        if name not in exported and not name.startswith(EXTERNAL_PREFIXES)
    )


def test_alert_metrics_are_exported(server_metric_names: set[str]) -> None:
    """Every metric an alert reads is exported by the server, a worker, or Kubernetes."""
    queries = [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]
    assert unknown_metrics(queries, server_metric_names) == []


@pytest.mark.parametrize("path", dashboards(), ids=lambda path: path.name)
def test_dashboard_metrics_are_exported(path: Path, server_metric_names: set[str]) -> None:
    """Every metric a dashboard panel reads is exported by the server, a worker, or Kubernetes."""
    queries = list(dashboard_queries(json.loads(path.read_text(encoding="utf-8"))))
    assert queries, f"{path.name} has no queries"
    assert unknown_metrics(queries, server_metric_names) == []


# -- Grafana ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", dashboards(), ids=lambda path: path.name)
def test_dashboard_panels_are_well_formed(path: Path) -> None:
    """Panel ids are unique; every panel sits on the grid; every target has a refId."""
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        refs = [target["refId"] for target in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]


def test_grafana_provisioning_finds_prometheus_and_dashboards() -> None:
    """Provisioning declares one Prometheus data source and a file provider for dashboards."""
    sources = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert [source["type"] for source in sources] == ["prometheus"]
    providers = load_yaml(PROVISIONING / "dashboards" / "livetutor.yml")["providers"]
    assert [provider["type"] for provider in providers] == ["file"]
    assert all(provider["options"]["path"] for provider in providers)
    assert dashboards(), "no dashboards to provision"
