"""Shared helpers of the multi-pod benchmarks: pod settings, CPU accounting, stored answers.

:mod:`bench.fanout`, :mod:`bench.resume_chaos` and :mod:`bench.failover`
run a :class:`devtools.cluster.DevCluster` (real Redis, Sentinel and pod
processes on free ports) with the offline tutor, so answers are
deterministic and paced like a hosted model.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import psutil
from websockets.asyncio.client import ClientConnection

from bench._common import BASE_ENV, ws_connect

# The question every benchmark asks; the offline tutor answers it in 128 words.
QUESTION = "What makes an argument valid?"
HTTP_TIMEOUT_S = 10.0
_decode = msgspec.json.Decoder().decode


def offline_env(pace_ms: float, **extra: str) -> dict[str, str]:
    """Pod settings: offline tutor at ``pace_ms`` per word, limits out of the load's way.

    Every benchmark asks the same question; the answer cache is off so that each
    ask is generated and streamed (``bench.cache`` turns it on to measure it).
    """
    return {
        **BASE_ENV,
        "LIVETUTOR_CACHE_ANSWERS": "false",
        "LIVETUTOR_LLM_PROVIDER": "offline",
        "LIVETUTOR_LLM_OFFLINE_PACE_MS": str(pace_ms),
        "LIVETUTOR_ASK_RATE_PER_MIN": "1000000",
        "LIVETUTOR_ASK_BURST": "1000000",
        "LIVETUTOR_MAX_STREAMS_PER_CONNECTION": "1000",
        # Some benchmarks hold many connections with one token.
        "LIVETUTOR_MAX_CONNECTIONS_PER_USER": "100000",
        "LIVETUTOR_IDLE_TIMEOUT_S": "3600",
        **extra,
    }


async def connect(url: str, token: str) -> ClientConnection:
    """A benchmark connection to a pod, past its ``welcome``."""
    ws = await ws_connect(url, token)
    welcome = _decode(await ws.recv())
    if welcome.get("type") != "welcome":
        await ws.close()
        raise ConnectionError(f"expected welcome, got {welcome.get('type')}")
    return ws


async def stored_messages(http_url: str, token: str, session: str) -> list[dict[str, Any]]:
    """``GET /sessions/{session}/messages``: the session's stored messages, oldest first."""
    async with httpx.AsyncClient(base_url=http_url, timeout=HTTP_TIMEOUT_S) as http:
        response = await http.get(
            f"/sessions/{session}/messages",
            params={"limit": 1000},
            headers={"Authorization": f"Bearer {token}"},
        )
    response.raise_for_status()
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


# -- CPU accounting -------------------------------------------------------------


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_cpu_s(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _machine_busy_s() -> float:
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    return float(sum(times) - idle)


@dataclass
class CpuUsage:
    """CPU over a window, each in percent of one core."""

    processes: dict[str, float] = field(default_factory=dict)
    client: float = 0.0
    machine: float = 0.0

    @property
    def others(self) -> float:
        """The machine's busy time not used by the measured processes (other work)."""
        return max(self.machine - self.client - sum(self.processes.values()), 0.0)

    def describe(self) -> str:
        """One line: every process, this benchmark's own client, the machine."""
        parts = [f"{name} {pct:.0f}" for name, pct in self.processes.items()]
        parts.append(f"client (this process) {self.client:.0f}")
        cores = os.cpu_count() or 1
        parts.append(f"machine {self.machine:.0f} of {cores * 100}, other work {self.others:.0f}")
        return ", ".join(parts)


class CpuMeter:
    """Measures CPU time of named processes, this process and the whole machine."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._pids = dict(pids)
        self._began = 0.0
        self._before: dict[str, float] = {}
        self._own = 0.0
        self._machine = 0.0

    def start(self) -> None:
        """Begin the window."""
        self._before = {name: _process_cpu_s(pid) for name, pid in self._pids.items()}
        self._own = _own_cpu_s()
        self._machine = _machine_busy_s()
        self._began = time.monotonic()

    def stop(self) -> CpuUsage:
        """End the window; percentages of one core over its wall time."""
        wall_s = max(time.monotonic() - self._began, 1e-9)
        processes = {
            name: 100 * (_process_cpu_s(pid) - self._before[name]) / wall_s
            for name, pid in self._pids.items()
        }
        return CpuUsage(
            processes=processes,
            client=100 * (_own_cpu_s() - self._own) / wall_s,
            machine=100 * (_machine_busy_s() - self._machine) / wall_s,
        )
