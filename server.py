"""Entry point: ``hermes-webui`` (console script) or ``python server.py``.

Start-up order (docs/architecture.md §1): configuration → state dir checked and locked → start-up
self-heal → ``create_app()`` → waitress → ``--port-file`` written. SIGINT and SIGTERM stop
it cleanly: the listener closes, the session index is flushed and the state-dir lock is
released.

Installed, this module is ``hermes_webui.server`` and the backend is ``hermes_webui.api``;
run as ``python server.py`` from a checkout, the backend is the folder ``api/`` beside it.
:func:`_api` imports from whichever applies, so nothing named ``api`` need be installed.
"""
from __future__ import annotations

import ctypes
import errno
import importlib
import importlib.util
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

log = logging.getLogger("hermes_webui")

# "hermes_webui.api" in an installed copy (this module is hermes_webui.server); "api" when
# run as a script from a checkout, where server.py's folder is first on sys.path.
_API_PACKAGE = f"{__package__}.api" if __package__ else "api"


def _api(module: str):
    """The backend module ``api.<module>`` under the package this server runs from."""
    return importlib.import_module(f"{_API_PACKAGE}.{module}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _limit_malloc_arenas() -> None:
    """Cap glibc at two malloc arenas (M_ARENA_MAX). By default each worker thread gets
    its own arena that keeps freed buffers: opening a few 20 MB sessions left RSS at
    600+ MiB instead of ~150. A no-op where libc has no mallopt."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, 2)
    except (OSError, AttributeError):
        pass


def _configure_logging(level: str) -> None:
    """Log to stderr, one line per record: control characters in any logged value are
    escaped (api.request_log.OneLineFormatter), so request data cannot forge a line."""
    OneLineFormatter = _api("request_log").OneLineFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    # Libraries that log every token they parse: their debug lines drown ours at --log-level debug.
    for noisy in ("markdown_it", "urllib3", "httpx", "httpcore", "openai"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLogger().level))


def _raise_interrupt(signum, frame):
    # The open /api/sessions/events streams end first: waitress, on this interrupt, waits up
    # to 5 s for its threads, and a stream still open would hold one that long and then
    # write to a closed socket (a traceback in the log for every open tab).
    _api("session_events").close_all()
    raise KeyboardInterrupt


def _error(message: str) -> None:
    print(f"hermes-webui: error: {message}", file=sys.stderr)


def _check_state_dir(state_dir: Path, describe) -> str | None:
    """Create the state dir if needed and prove a file can be written in it. Returns None
    when it is usable, else one sentence saying what is wrong and how to fix it."""
    what = f"the state dir {state_dir}"
    if state_dir.exists() and not state_dir.is_dir():
        return (f"{what} is a file, not a folder; move the file away or choose another folder "
                "with --state-dir")
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=state_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return describe(exc, what)
    return None


def _listen_error(exc: OSError, host: str, port: int) -> str:
    """Why waitress could not listen on ``host:port``, as a sentence with the fix."""
    where = f"cannot listen on {host}:{port}"
    if isinstance(exc, socket.gaierror):
        return f"{where}: {host} is not a name or address of this machine; use --host 127.0.0.1 or one of its addresses"
    if exc.errno == errno.EADDRINUSE:
        return (f"{where}: the port is already in use (another hermes-webui, or another program); "
                "stop it or choose another port with --port")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"{where}: this user may not open that port (ports below 1024 need privileges); "
                "choose one from 1024 up with --port, e.g. --port 8787")
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"{where}: {host} is not an address of this machine; use --host 127.0.0.1 (this machine "
                "only) or --host 0.0.0.0 (every network)")
    return f"{where} ({exc.strerror or exc}); try another --host or --port"


def _write_port_file(path: Path, host: str, port: int) -> None:
    """Write ``{"host", "port", "pid", "url"}`` to ``path`` atomically
    (:func:`api.atomic.atomic_write_text`), so a reader never sees half of it."""
    url_host = f"[{host}]" if ":" in host else host
    data = json.dumps({"host": host, "port": port, "pid": os.getpid(), "url": f"http://{url_host}:{port}/"})
    _api("atomic").atomic_write_text(path, data + "\n", mode=0o644)


def _agent_warning(config) -> str | None:
    """A start-up warning when the chosen agent's packages are missing (turns would then
    answer with an error naming the same command)."""
    if config.agent == "openai" and importlib.util.find_spec("openai") is None:
        return ("--agent openai needs the openai package, which is not installed: "
                "pip install 'hermes-webui[openai]'")
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGINT/SIGTERM (or, with ``migrate`` or ``export`` first, that
    subcommand: :mod:`api.commands`). Returns the process exit code
    (2: bad configuration, 3: state dir busy or unusable, or the port cannot be opened).
    ``--help`` and ``--version`` print and exit 0."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("migrate", "export"):   # subcommands beside serving (api.commands)
        return _api("commands").main(argv)
    config_mod = _api("config")
    try:
        config = config_mod.parse_config(argv)
    except ValueError as exc:
        _error(str(exc))
        return 2
    os.umask(0o077)  # conversations are private: every file and folder we create is the user's alone
    _limit_malloc_arenas()
    _configure_logging(config.log_level)

    problem = _check_state_dir(config.state_dir, config_mod.describe_os_error)
    if problem:
        _error(problem)
        return 3
    port_file = Path(config.port_file).expanduser().absolute() if config.port_file else None
    if port_file:
        try:
            port_file.unlink(missing_ok=True)    # a stale file from an earlier run must not be read as ours
        except OSError as exc:
            _error(config_mod.describe_os_error(exc, f"the port file {port_file}", flag="--port-file"))
            return 2

    import waitress

    create_app = importlib.import_module(_API_PACKAGE).create_app
    recover_all_sessions_on_startup = _api("session_recovery").recover_all_sessions_on_startup
    statelock = _api("statelock")
    interrupt_all_turns = _api("turns").interrupt_all_turns
    settings = _api("settings")
    SettingsUnreadable = settings.SettingsUnreadable

    try:
        has_password = settings.password_is_set(config)   # fail closed: a damaged settings.json stops here
    except SettingsUnreadable as exc:
        _error(str(exc))
        return 2
    if config.require_password and not has_password:
        _error("--require-password is set but no password was given "
               "(--password-file, HERMES_WEBUI_PASSWORD, or one set in the UI)")
        return 2
    if config.password_on_command_line:
        log.warning("--password is visible to every user of this machine (ps, /proc); it is meant for "
                    "tests. Use --password-file FILE or HERMES_WEBUI_PASSWORD instead.")
    if config.password_file is not None:
        try:
            mode = os.stat(os.path.expanduser(config.password_file)).st_mode
        except OSError:
            mode = 0
        if mode & 0o077:
            log.warning("the password file %s can be read by other users of this machine; "
                        "make it private: chmod 600 %s", config.password_file, config.password_file)
    if not _is_loopback(config.host) and not has_password:
        log.warning("!" * 72)
        log.warning("Listening on %s WITHOUT A PASSWORD: anyone who can reach this port can read "
                    "every conversation and talk to your agent. Set a password with --password-file.", config.host)
        log.warning("!" * 72)
    agent_warning = _agent_warning(config)
    if agent_warning:
        log.warning("%s", agent_warning)
    try:
        lock = statelock.acquire_state_lock(config.state_dir)
    except statelock.StateDirBusy as exc:
        _error(str(exc))
        return 3
    except OSError as exc:
        _error(config_mod.describe_os_error(exc, f"the state dir {config.state_dir}"))
        return 3
    try:
        try:
            report = recover_all_sessions_on_startup(config.state_dir)
            log.info("self-heal: %d backups checked, %d sessions restored, %d skipped, %d temp files removed",
                     report["backups_checked"], len(report["restored"]), len(report["skipped"]),
                     len(report["temp_files_removed"]))
            app = create_app(config)
        except SettingsUnreadable as exc:
            _error(str(exc))
            return 2
        except OSError as exc:  # a file where the state dir needs a folder, or the reverse
            where = exc.filename or config.state_dir
            if exc.errno in (errno.EISDIR, errno.EEXIST, errno.ENOTDIR):
                needed = "a file" if exc.errno == errno.EISDIR else "a folder"
                _error(f"{where} is in the way: the server keeps {needed} there. Move it out of the "
                       "state dir, or pass another --state-dir")
            else:
                _error(config_mod.describe_os_error(exc, f"{where} (in the state dir)"))
            return 3
        state = app.extensions["hermes"]
        install = getattr(state.backend, "install_command", None)   # a backend whose packages are missing
        if install:
            log.warning("the %s agent is not installed, so every reply will be an error; install it with: %s",
                        state.backend.name, install)
        try:
            server = waitress.create_server(app, host=config.host, port=config.port, threads=config.threads,
                                            connection_limit=max(1000, config.threads * 2),
                                            channel_timeout=300, ident="hermes-webui",
                                            # --trust-proxy: api.auth applies X-Forwarded-* (ProxyFix)
                                            clear_untrusted_proxy_headers=not config.trust_proxy)
        except OSError as exc:
            _error(_listen_error(exc, config.host, config.port))
            state.store.close()
            return 3
        port = int(server.effective_port)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        signal.signal(signal.SIGINT, _raise_interrupt)   # Ctrl-C stops the same way
        print(f"hermes-webui listening on http://{config.host}:{port}/ "
              f"(agent: {state.backend.name}, state: {config.state_dir})", flush=True)
        try:
            if port_file:
                try:
                    _write_port_file(port_file, config.host, port)   # the machine-readable "ready"
                except OSError as exc:
                    _error(config_mod.describe_os_error(exc, f"the port file {port_file}", flag="--port-file"))
                    return 2
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            # A clean stop keeps every running turn: its partial reply is saved, marked
            # interrupted, and its followers get stream_end, before the listener closes.
            app.extensions["hermes_scheduler"].stop()   # no scheduled run starts from now on
            interrupted = interrupt_all_turns()
            if interrupted:
                log.info("saved %d running turn(s) as interrupted", interrupted)
            _api("session_events").close_all()   # open /api/sessions/events streams end now
            server.close()
            state.store.close()
            if port_file:
                try:
                    port_file.unlink(missing_ok=True)
                except OSError:
                    pass
            log.info("hermes-webui stopped")
    finally:
        lock.release()
    if getattr(state.backend, "name", "") == "local":
        _exit_without_teardown()
    return 0


def _exit_without_teardown() -> None:
    """End a stopped server with exit code 0 without the interpreter's teardown: llama.cpp's
    own threads (the embedded model) outlive it, and a stop after any local reply ended in a
    segmentation fault or abort about half the time. Everything is saved by now; the
    ``atexit`` callbacks (temp folders, workers) and log flushes still run."""
    import atexit

    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
