"""The start-up scripts of Redis and Sentinel pick the right master.

The scripts from k8s/redis.yaml and the Sentinel command of docker-compose.yml run under
``sh`` with stand-ins for ``hostname``, ``redis-cli`` (answering as the Sentinels would),
``getent`` and ``redis-server`` (which prints the arguments it was started with).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.files import K8S, compose, config_map_data, k8s_object, service_env_values

SCRIPT_TIMEOUT_S = 30.0


def redis_scripts(target: Path) -> Path:
    """The ConfigMap's scripts written to ``target``."""
    scripts = k8s_object("ConfigMap", "redis-scripts", [K8S / "redis.yaml"])["data"]
    for name, text in scripts.items():
        (target / name).write_text(text, encoding="utf-8")
    return target


def stand_in(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)


def run_script(tmp_path: Path, script: str, pod: str, sentinel_answer: str = "") -> str:
    """Run ``script`` as pod ``pod`` whose Sentinels report ``sentinel_answer`` as master."""
    scripts = tmp_path / "scripts"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stand_in(bin_dir, "hostname", f"echo {pod}")
    answer = f'printf "%s\\n%s\\n" "{sentinel_answer}" 6379' if sentinel_answer else "exit 1"
    stand_in(bin_dir, "redis-cli", answer)
    stand_in(bin_dir, "getent", "exit 0")
    stand_in(bin_dir, "redis-server", 'echo "redis-server $*"')
    sentinel_dir = tmp_path / "sentinel"
    sentinel_dir.mkdir(exist_ok=True)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "REDIS_MASTER_NAME": config_map_data()["REDIS_MASTER_NAME"],
        "REDIS_PASSWORD": "redis-pw",
        "REDIS_SENTINEL_PASSWORD": "sentinel-pw",
        "SENTINEL_DIR": str(sentinel_dir),
    }
    result = subprocess.run(
        ["sh", str(scripts / script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=SCRIPT_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def replicaof(output: str) -> str | None:
    match = re.search(r"--replicaof (\S+) 6379", output)
    return match.group(1) if match else None


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    redis_scripts(tmp_path / "scripts")
    return tmp_path


def test_first_start_makes_pod_0_the_master(workdir: Path) -> None:
    """With no Sentinel answering yet, redis-0 starts as the master."""
    output = run_script(workdir, "redis.sh", "redis-0")
    assert replicaof(output) is None
    assert "--replica-announce-ip redis-0.redis-headless" in output
    assert "--requirepass redis-pw --masterauth redis-pw" in output


def test_first_start_makes_other_pods_replicas_of_pod_0(workdir: Path) -> None:
    """With no Sentinel answering yet, the other pods replicate redis-0."""
    assert replicaof(run_script(workdir, "redis.sh", "redis-2")) == "redis-0.redis-headless"


def test_restart_after_failover_follows_the_sentinels(workdir: Path) -> None:
    """redis-0 restarting after a failover joins the promoted master as a replica."""
    output = run_script(workdir, "redis.sh", "redis-0", "redis-2.redis-headless")
    assert replicaof(output) == "redis-2.redis-headless"


def test_the_reported_master_stays_master(workdir: Path) -> None:
    """The pod the Sentinels name as master restarts as master, not as its own replica."""
    output = run_script(workdir, "redis.sh", "redis-1", "redis-1.redis-headless")
    assert replicaof(output) is None


def test_sentinel_monitors_the_current_master(workdir: Path) -> None:
    """Each Sentinel monitors the reported master by the name the server asks for."""
    output = run_script(workdir, "sentinel.sh", "redis-1", "redis-2.redis-headless")
    assert output.strip() == f"redis-server {workdir / 'sentinel' / 'sentinel.conf'} --sentinel"
    conf = (workdir / "sentinel" / "sentinel.conf").read_text()
    name = config_map_data()["REDIS_MASTER_NAME"]
    assert f"sentinel monitor {name} redis-2.redis-headless 6379 2" in conf
    assert f"sentinel auth-pass {name} redis-pw" in conf
    assert "requirepass sentinel-pw" in conf
    assert "sentinel announce-ip redis-1.redis-headless" in conf


def test_scripts_know_the_pod_count() -> None:
    """The scripts ask as many Sentinels as the StatefulSet runs."""
    scripts = k8s_object("ConfigMap", "redis-scripts", [K8S / "redis.yaml"])["data"]
    replicas = k8s_object("StatefulSet", "redis", [K8S / "redis.yaml"])["spec"]["replicas"]
    match = re.search(r"^REPLICAS=(\d+)$", scripts["common.sh"], re.M)
    assert match and int(match.group(1)) == replicas


def run_compose_sentinel(tmp_path: Path) -> str:
    """The compose Sentinel's command, with its volume at ``tmp_path`` and a stand-in server."""
    sentinel = compose()["services"]["sentinel-1"]
    shell, flag, script = sentinel["command"]
    script = script.replace("$$", "$").replace("/data/", f"{tmp_path}/data/")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stand_in(bin_dir, "redis-server", 'echo "redis-server $*"')
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "REDIS_PASSWORD": "redis-pw",
        "REDIS_SENTINEL_PASSWORD": "sentinel-pw",
    }
    result = subprocess.run(
        [shell, flag, script], capture_output=True, text=True, env=env, timeout=SCRIPT_TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_compose_sentinel_monitors_the_master(tmp_path: Path) -> None:
    """A compose Sentinel monitors redis-master under the name the servers ask for."""
    run_compose_sentinel(tmp_path)
    conf = (tmp_path / "data" / "sentinel" / "sentinel.conf").read_text()
    name = service_env_values(compose()["services"]["server"])["REDIS_MASTER_NAME"]
    assert f"sentinel monitor {name} redis-master 6379 2" in conf
    assert f"sentinel auth-pass {name} redis-pw" in conf
    assert "requirepass sentinel-pw" in conf


def test_compose_sentinel_keeps_what_it_learned(tmp_path: Path) -> None:
    """A restarted compose Sentinel keeps its rewritten configuration (say, after a failover)."""
    run_compose_sentinel(tmp_path)
    conf = tmp_path / "data" / "sentinel" / "sentinel.conf"
    learned = conf.read_text().replace("redis-master 6379", "redis-replica 6379")
    conf.write_text(learned)
    output = run_compose_sentinel(tmp_path)
    assert conf.read_text() == learned
    assert output.strip() == f"redis-server {conf} --sentinel"
