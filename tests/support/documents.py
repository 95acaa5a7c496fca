"""Helpers for tests of course documents: upload, wait, ask."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from realtime.client import TutorClient


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def upload(
    http: httpx.AsyncClient, course: str, data: bytes, token: str, name: str = "guide.pdf"
) -> httpx.Response:
    return await http.post(
        f"/courses/{course}/documents",
        files={"file": (name, data, "application/pdf")},
        headers=bearer(token),
    )


async def wait_document(
    http: httpx.AsyncClient,
    doc_id: str,
    token: str,
    statuses: tuple[str, ...] = ("ready", "failed"),
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    """Poll GET /documents/{id} until its status is one of ``statuses``."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = await http.get(f"/documents/{doc_id}", headers=bearer(token))
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        if view["status"] in statuses:
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"document {doc_id} still {view['status']} after {timeout_s} s")
        await asyncio.sleep(0.05)


async def ask(client: TutorClient, question: str, course: str) -> tuple[str, list[dict[str, Any]]]:
    """The answer text and its sources."""
    ask_id = await client.ask(question, course=course)
    answer = await client.answer(ask_id, timeout_s=30)
    assert answer.reason == "stop", answer.end
    return answer.text, answer.sources
