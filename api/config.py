"""Configuration: one typed object built from CLI flags > ``HERMES_WEBUI_*`` env > defaults.

Modelled on waitress's ``adjustments.py``: :func:`parse_config` is the only code that
reads the command line or the environment; everything else reads :class:`Config`.
"""
from __future__ import annotations

import argparse
import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from .hosts import parse_allowed_hosts, parse_trusted_proxies
from .version import __version__

ENV_PREFIX = "HERMES_WEBUI_"
AGENTS = ("local", "hermes", "openai", "fake")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass
class Config:
    """Every setting of a running server. Durations are seconds, sizes bytes."""

    state_dir: Path = field(default_factory=lambda: Path.home() / ".hermes-webui")
    host: str = "127.0.0.1"
    port: int = 8787
    port_file: Path | None = None  # written with {"host", "port", "pid", "url"} once listening
    threads: int = 128
    agent: str = "local"
    log_level: str = "INFO"
    # openai-compatible backend
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    # local backend
    model_path: str | None = None
    context_size: int = 4096       # tokens the local model sees (prompt + reply)
    max_tokens: int = 512          # longest local-model reply, tokens (also caps /v1 requests)
    # hermes backend
    hermes_home: str | None = None
    toolsets: str | None = None   # None: the hermes backend's default set (api.agents.hermes.DEFAULT_TOOLSETS)
    # limits and timings
    max_message_bytes: int = 1024 * 1024          # one user message, UTF-8 bytes (docs/architecture.md §3)
    max_tool_result_bytes: int = 16 * 1024 * 1024  # one tool result or reasoning block, kept whole up to this
    max_body_bytes: int | None = None             # a JSON request body; default: room for the largest message
    max_upload_bytes: int = 20 * 1024 * 1024
    max_attachment_bytes: int = 25 * 1024 * 1024  # one file attached to a message (docs/architecture.md §3)
    max_import_bytes: int = 200 * 1024 * 1024     # one /api/session/import document (exports embed attachments)
    # workspace: extra roots a session may pick, separated by os.pathsep
    workspace_roots: str = ""
    heartbeat_seconds: float = 5.0
    approval_timeout: float = 300.0               # seconds an approval or a clarify waits; then deny / no answer
    checkpoint_seconds: float = 1.0
    stream_retention_seconds: float = 300.0
    # auth and the network perimeter
    password: str | None = None
    password_file: Path | None = None       # read into ``password`` by parse_config
    password_on_command_line: bool = False  # --password was given as a flag (visible in ps)
    require_password: bool = False
    login_lifetime_seconds: float = 30 * 24 * 3600.0
    max_failed_logins_per_minute: int = 30  # from all clients together (5 per client always)
    allowed_hosts: str = ""                 # extra Host names, comma-separated (api.hosts)
    trust_proxy: bool = False
    trusted_proxies: str = "127.0.0.1,::1"  # peers whose X-Forwarded-* count, comma-separated
    proxy_hops: int = 1                     # proxies in front of us, each appending X-Forwarded-For
    # tests only (HERMES_WEBUI_TEST_CLOCK=1): the task scheduler's clock moves only through
    # POST /api/tasks/test-clock (api.scheduler.ManualClock); no flag, never for real use
    test_clock: bool = False

    def __post_init__(self):
        if self.max_body_bytes is None:
            self.max_body_bytes = 6 * self.max_message_bytes + 1024 * 1024

    @property
    def sessions_dir(self) -> Path:
        return self.state_dir / "sessions"

    @property
    def hermes_home_dir(self) -> Path:
        """hermes-agent's home, resolved: ``--hermes-home``, else ``$HERMES_HOME`` (both
        read by :func:`parse_config`), else ``~/.hermes``. The one rule every module uses."""
        return Path(self.hermes_home or Path.home() / ".hermes").expanduser().resolve()


# (flag, type, help). Each flag also reads HERMES_WEBUI_<NAME>.
_FLAGS = [
    ("host", str, "address to bind (default 127.0.0.1: this machine only)"),
    ("port", int, "port to listen on (default 8787; 0 picks a free one, see --port-file)"),
    ("port_file", Path, "once listening, write {\"host\", \"port\", \"pid\", \"url\"} as JSON to this file "
     "(atomically: it appears complete or not at all); with --port 0 it is how a script learns the port"),
    ("state_dir", Path, "where sessions and settings live (default ~/.hermes-webui)"),
    ("threads", int, "worker threads; each open stream holds one (default 128)"),
    ("agent", str, f"agent backend: {', '.join(AGENTS)} (default local)"),
    ("log_level", str, "DEBUG, INFO, WARNING, ERROR or CRITICAL (default INFO)"),
    ("base_url", str, "openai/hermes backend: OpenAI-compatible base URL"),
    ("api_key", str, "openai/hermes backend: API key"),
    ("model", str, "model name sent to the backend"),
    ("model_path", str, "local backend: a GGUF file to load instead of the bundled model"),
    ("context_size", int, "local backend: context window in tokens; older history is trimmed to fit (default 4096)"),
    ("max_tokens", int, "local backend and /v1: longest reply in tokens (default 512)"),
    ("hermes_home", str, "hermes backend: its home dir (default $HERMES_HOME, else ~/.hermes)"),
    ("toolsets", str, "hermes backend: comma-separated hermes-agent toolsets, or none (default "
     "terminal,file,web,memory,todo,clarify; dangerous commands ask for approval first)"),
    ("approval_timeout", float, "seconds the agent waits for an approval (then: denied) or an answer to its "
     "question (then: none) (default 300)"),
    ("heartbeat_seconds", float, "SSE heartbeat interval in seconds (default 5)"),
    ("checkpoint_seconds", float, "how often a running turn saves its partial reply (default 1)"),
    ("max_message_bytes", int, "largest user message in UTF-8 bytes; larger ones get 413 (default 1 MiB)"),
    ("max_tool_result_bytes", int, "largest tool result or reasoning block kept whole, in bytes (default 16 MiB)"),
    ("max_body_bytes", int, "largest JSON request body in bytes (default: 6 x the message limit + 1 MiB, "
     "room for a message of the largest size even with every character JSON-escaped)"),
    ("max_upload_bytes", int, "largest workspace upload in bytes (default 20 MiB)"),
    ("max_attachment_bytes", int, "largest file attached to a message in bytes; larger ones get 413 (default 25 MiB)"),
    ("max_import_bytes", int, "largest session import in bytes, a JSON export with its attachments embedded "
     "(default 200 MiB)"),
    ("workspace_roots", str, "extra workspace folders a session may pick, separated by ':' "
     "(the default root is <state-dir>/workspace)"),
    ("password", str, "require this password to use the UI; for tests only: every user of this machine "
     "sees it in ps (use --password-file or HERMES_WEBUI_PASSWORD)"),
    ("password_file", Path, "require the password held in this file (its first line; trailing newline ignored)"),
    ("login_lifetime_seconds", float, "how long a login lasts, in seconds (default 30 days)"),
    ("max_failed_logins_per_minute", int, "failed logins accepted per minute from all clients together; "
     "beyond it every login waits (default 30; 5 per client always)"),
    ("allowed_hosts", str, "extra names this server may be reached by, comma-separated (*.example.com for "
     "subdomains, * for any); loopback names, IP addresses and --host are always allowed"),
    ("trusted_proxies", str, "with --trust-proxy: addresses or networks of the proxies whose X-Forwarded-* "
     "headers count, comma-separated (default 127.0.0.1,::1); implies --trust-proxy"),
    ("proxy_hops", int, "with --trust-proxy: how many proxies stand in front of this server (default 1)"),
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
    parser.add_argument("--trust-proxy", dest="trust_proxy", action="store_true", default=None,
                        help="behind a reverse proxy: honour its X-Forwarded-For/-Proto/-Host headers "
                        "(client address for the login rate limit, Secure cookies under https)")
    parser.add_argument("--version", action="version", version=f"hermes-webui {__version__}")
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
            except ValueError:
                kind = {int: "a whole number", float: "a number"}.get(typ, "a valid value")
                raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not {kind}") from None
        if value is not None:
            setattr(cfg, name, value)
    if args.require_password or _env_bool(env.get(ENV_PREFIX + "REQUIRE_PASSWORD", "")):
        cfg.require_password = True
    if args.trust_proxy or _env_bool(env.get(ENV_PREFIX + "TRUST_PROXY", "")):
        cfg.trust_proxy = True
    if args.trusted_proxies is not None or ENV_PREFIX + "TRUSTED_PROXIES" in env:
        cfg.trust_proxy = True
    cfg.test_clock = _env_bool(env.get(ENV_PREFIX + "TEST_CLOCK", ""))
    cfg.password_on_command_line = args.password is not None
    _read_password_file(cfg, from_flag=args.password is not None or ENV_PREFIX + "PASSWORD" in env)
    cfg.state_dir = Path(cfg.state_dir).expanduser().resolve()
    if cfg.hermes_home is None and env.get("HERMES_HOME"):
        cfg.hermes_home = env["HERMES_HOME"]        # the user's Hermes home, as the Hermes CLI finds it
    cfg.log_level = str(cfg.log_level).upper()
    if cfg.log_level not in LOG_LEVELS:
        raise ValueError(f"unknown --log-level {cfg.log_level!r}; choose one of {', '.join(LOG_LEVELS)}")
    if cfg.agent not in AGENTS:
        raise ValueError(f"unknown agent backend {cfg.agent!r}; choose one of {', '.join(AGENTS)}")
    if not (0 <= cfg.port <= 65535):
        raise ValueError(f"port {cfg.port} is out of range")
    if min(cfg.max_message_bytes, cfg.max_tool_result_bytes, cfg.max_attachment_bytes, cfg.max_import_bytes) < 1:
        raise ValueError("message, tool result, attachment and import limits must be positive numbers of bytes")
    if args.max_body_bytes is None and ENV_PREFIX + "MAX_BODY_BYTES" not in env:
        cfg.max_body_bytes = 6 * cfg.max_message_bytes + 1024 * 1024
    if not cfg.approval_timeout > 0:
        raise ValueError("approval timeout must be a positive number of seconds")
    if cfg.threads < 4:
        raise ValueError("threads must be at least 4 (each open stream holds one)")
    if cfg.context_size < 128:
        raise ValueError("context size must be at least 128 tokens")
    if not 1 <= cfg.max_tokens < cfg.context_size:
        raise ValueError("max tokens must be at least 1 and below the context size")
    if not cfg.login_lifetime_seconds > 0:
        raise ValueError("login lifetime must be a positive number of seconds")
    if cfg.max_failed_logins_per_minute < 1:
        raise ValueError("max failed logins per minute must be at least 1")
    if cfg.proxy_hops < 1:
        raise ValueError("proxy hops must be at least 1")
    parse_allowed_hosts(cfg.allowed_hosts)       # ValueError names the bad entry
    parse_trusted_proxies(cfg.trusted_proxies)
    return cfg


def _read_password_file(cfg: Config, from_flag: bool) -> None:
    """Set ``cfg.password`` from ``cfg.password_file``: its first line, without the line end.
    Raises ``ValueError`` if the file cannot be read, is empty, or a password is also given."""
    if cfg.password_file is None:
        return
    if from_flag:
        raise ValueError("give the password once: --password-file, or --password / HERMES_WEBUI_PASSWORD, not both")
    path = Path(cfg.password_file).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"the password file {path} is not UTF-8 text; write the password on its first line") from None
    except OSError as exc:
        raise ValueError(f"cannot read the password file {path}: " + describe_os_error(
            exc, "it", missing="create it with the password on its first line (chmod 600 it)",
            flag="--password-file")) from None
    password = text.split("\n", 1)[0].rstrip("\r")
    if not password:
        raise ValueError(f"the password file {path} is empty; write the password on its first line")
    cfg.password = password


def describe_os_error(exc: OSError, what: str, *, missing: str | None = None,
                      flag: str = "--state-dir") -> str:
    """One sentence saying what went wrong with ``what`` (e.g. "the state dir /x", or "it")
    and how to fix it, instead of the bare errno text. ``missing`` is the fix for a path
    that does not exist; ``flag`` the option that picks another path."""
    code = exc.errno
    if code == errno.ENOENT:
        return f"{what} does not exist; " + (missing or f"create it, or choose another with {flag}")
    if code in (errno.EACCES, errno.EPERM):
        return (f"this user ({_user()}) has no permission to use {what}; fix its permissions "
                f"(chmod u+rwX) or choose another with {flag}")
    if code == errno.EROFS:
        return f"{what} is on a read-only file system; choose a writable place with {flag}"
    if code in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk holding {what} (or your quota there) is full; free some space and start again"
    if code in (errno.ENOTDIR, errno.EEXIST):
        return f"{what}, or a folder above it, is a file, not a folder; move the file away or choose another with {flag}"
    if code == errno.EISDIR:
        return f"{what} is a folder, not a file; name a file with {flag}"
    if code == errno.ENAMETOOLONG:
        return f"the path of {what} is too long; choose a shorter one with {flag}"
    return f"{what} cannot be used ({exc.strerror or exc}); choose another with {flag}"


def _user() -> str:
    try:
        import pwd
        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())
