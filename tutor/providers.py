"""The LLM provider a process uses, picked by name from the settings.

``LIVETUTOR_LLM_PROVIDER`` names it: ``openai`` (any OpenAI-compatible
endpoint), ``local`` (llama.cpp's server run by the process itself, see
:mod:`tutor.local_model`) or ``offline`` (the labelled composer that needs no
model). The pod
(:mod:`server.backends`) and the Celery cache-warming task both choose here,
so they always answer with the same model.
"""

from __future__ import annotations

from core.settings import Settings
from tutor.llm import LLMProvider
from tutor.llm_offline import OfflineProvider


def create_provider(settings: Settings) -> LLMProvider:
    """The configured LLM provider: OpenAI-compatible when set up, else the offline tutor."""
    if settings.llm_provider == "openai":
        from tutor.llm_openai import OpenAIProvider

        return OpenAIProvider(settings.llm)
    if settings.llm_provider == "local":
        from tutor.local_model import LocalProvider, require_server

        require_server()
        return LocalProvider(settings)
    return OfflineProvider(settings.llm)
