"""Configuration: one typed object built from CLI flags > ``HERMES_WEBUI_*`` env > defaults.

Modelled on waitress's ``adjustments.py``: :func:`parse_config` is the only code that
reads the command line or the environment; everything else reads :class:`Config`.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "HERMES_WEBUI_"
AGENTS = ("local", "hermes", "openai", "fake")


@dataclass
class Config:
    """Every setting of a running server. Durations are seconds, sizes bytes."""

    state_dir: Path = field(default_factory=lambda: Path.home() / ".hermes-webui")
    host: str = "127.0.0.1"
    port: int = 8787
    threads: int = 128
    agent: str = "local"
    log_level: str = "INFO"
    # openai-compatible backend
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    # local backend
    model_path: str | None = None
    # hermes backend
    hermes_home: str | None = None
    toolsets: str = ""
    # limits and timings
    max_body_bytes: int = 2 * 1024 * 1024
    heartbeat_seconds: float = 5.0
    checkpoint_seconds: float = 1.0
    stream_retention_seconds: float = 300.0
    # auth (issue 8)
    password: str | None = None
    require_password: bool = False

    @property
    def sessions_dir(self) -> Path:
        return self.state_dir / "sessions"


# (flag, type, help). Each flag also reads HERMES_WEBUI_<NAME>.
_FLAGS = [
    ("host", str, "address to bind (default 127.0.0.1: this machine only)"),
    ("port", int, "port to listen on (default 8787)"),
    ("state_dir", Path, "where sessions and settings live (default ~/.hermes-webui)"),
    ("threads", int, "worker threads; each open stream holds one (default 128)"),
    ("agent", str, f"agent backend: {', '.join(AGENTS)} (default local)"),
    ("log_level", str, "DEBUG, INFO, WARNING or ERROR (default INFO)"),
    ("base_url", str, "openai/hermes backend: OpenAI-compatible base URL"),
    ("api_key", str, "openai/hermes backend: API key"),
    ("model", str, "model name sent to the backend"),
    ("model_path", str, "local backend: a GGUF file to load instead of the bundled model"),
    ("hermes_home", str, "hermes backend: HERMES_HOME (default the user's ~/.hermes)"),
    ("toolsets", str, "hermes backend: comma-separated toolsets to enable (default none)"),
    ("heartbeat_seconds", float, "SSE heartbeat interval in seconds (default 5)"),
    ("checkpoint_seconds", float, "how often a running turn saves its partial reply (default 1)"),
    ("max_body_bytes", int, "largest JSON request body in bytes (default 2 MiB)"),
    ("password", str, "require this password to use the UI"),
]


def _env_bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hermes-webui",
        description="Self-hosted web UI for an AI agent. Every flag can also be set "
        "with the environment variable HERMES_WEBUI_<FLAG> (e.g. HERMES_WEBUI_PORT).",
    )
    for name, typ, help_text in _FLAGS:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None, help=help_text)
    parser.add_argument("--require-password", dest="require_password", action="store_true", default=None,
                        help="refuse to start without a password")
    return parser


def parse_config(argv: list[str] | None = None, env: dict[str, str] | None = None) -> Config:
    """Build a :class:`Config` from ``argv`` (default none) and ``env`` (default os.environ).

    Raises ``SystemExit`` (argparse) on an unknown flag and ``ValueError`` on a bad value.
    """
    env = os.environ if env is None else env
    args = build_parser().parse_args(argv or [])
    cfg = Config()
    for name, typ, _ in _FLAGS:
        value = getattr(args, name)
        if value is None and ENV_PREFIX + name.upper() in env:
            raw = env[ENV_PREFIX + name.upper()]
            try:
                value = typ(raw)
            except ValueError as exc:
                raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r}: {exc}") from None
        if value is not None:
            setattr(cfg, name, value)
    if args.require_password or _env_bool(env.get(ENV_PREFIX + "REQUIRE_PASSWORD", "")):
        cfg.require_password = True
    cfg.state_dir = Path(cfg.state_dir).expanduser().resolve()
    if cfg.agent not in AGENTS:
        raise ValueError(f"unknown agent backend {cfg.agent!r}; choose one of {', '.join(AGENTS)}")
    if not (0 <= cfg.port <= 65535):
        raise ValueError(f"port {cfg.port} is out of range")
    if cfg.threads < 4:
        raise ValueError("threads must be at least 4 (each open stream holds one)")
    return cfg
