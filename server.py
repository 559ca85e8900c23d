"""Entry point: ``hermes-webui`` (console script) or ``python server.py``.

Start-up order (DESIGN §1): configuration → state-dir lock → start-up self-heal →
``create_app()`` → waitress. SIGINT and SIGTERM stop it cleanly: the listener closes,
the session index is flushed and the state-dir lock is released.
"""
from __future__ import annotations

import ctypes
import ipaddress
import logging
import os
import signal
import sys

log = logging.getLogger("hermes_webui")


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
    from api.request_log import OneLineFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGINT/SIGTERM. Returns the process exit code
    (2: bad configuration, 3: state dir busy or unusable)."""
    from api.config import parse_config

    try:
        config = parse_config(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"hermes-webui: error: {exc}", file=sys.stderr)
        return 2
    os.umask(0o077)  # conversations are private: every file and folder we create is the user's alone
    _limit_malloc_arenas()
    _configure_logging(config.log_level)

    import waitress

    from api import create_app
    from api.session_recovery import recover_all_sessions_on_startup
    from api.statelock import StateDirBusy, acquire_state_lock
    from api.turns import interrupt_all_turns

    from api.settings import SettingsUnreadable, password_is_set

    try:
        has_password = password_is_set(config)   # fail closed: a damaged settings.json stops here
    except SettingsUnreadable as exc:
        print(f"hermes-webui: error: {exc}", file=sys.stderr)
        return 2
    if config.require_password and not has_password:
        print("hermes-webui: error: --require-password is set but no password was given "
              "(--password-file, HERMES_WEBUI_PASSWORD, or one set in the UI)", file=sys.stderr)
        return 2
    if config.password_on_command_line:
        log.warning("--password is visible to every user of this machine (ps, /proc); it is meant for "
                    "tests. Use --password-file FILE or HERMES_WEBUI_PASSWORD instead.")
    if not _is_loopback(config.host) and not has_password:
        log.warning("!" * 72)
        log.warning("Listening on %s WITHOUT A PASSWORD: anyone who can reach this port can read "
                    "every conversation and talk to your agent. Set --password.", config.host)
        log.warning("!" * 72)
    try:
        lock = acquire_state_lock(config.state_dir)
    except (StateDirBusy, OSError) as exc:
        print(f"hermes-webui: error: {exc}", file=sys.stderr)
        return 3
    try:
        report = recover_all_sessions_on_startup(config.state_dir)
        log.info("self-heal: %d backups checked, %d sessions restored, %d skipped, %d temp files removed",
                 report["backups_checked"], len(report["restored"]), len(report["skipped"]),
                 len(report["temp_files_removed"]))
        try:
            app = create_app(config)
        except SettingsUnreadable as exc:
            print(f"hermes-webui: error: {exc}", file=sys.stderr)
            return 2
        state = app.extensions["hermes"]
        try:
            server = waitress.create_server(app, host=config.host, port=config.port, threads=config.threads,
                                            connection_limit=max(1000, config.threads * 2),
                                            channel_timeout=300, ident="hermes-webui",
                                            # --trust-proxy: api.auth applies X-Forwarded-* (ProxyFix)
                                            clear_untrusted_proxy_headers=not config.trust_proxy)
        except OSError as exc:
            print(f"hermes-webui: error: cannot listen on {config.host}:{config.port}: {exc.strerror or exc} "
                  "(is another server using that port? try --port)", file=sys.stderr)
            state.store.close()
            return 3
        port = server.effective_port
        signal.signal(signal.SIGTERM, _raise_interrupt)
        print(f"hermes-webui listening on http://{config.host}:{port}/ "
              f"(agent: {state.backend.name}, state: {config.state_dir})", flush=True)
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            # A clean stop keeps every running turn: its partial reply is saved, marked
            # interrupted, and its followers get stream_end, before the listener closes.
            interrupted = interrupt_all_turns()
            if interrupted:
                log.info("saved %d running turn(s) as interrupted", interrupted)
            server.close()
            state.store.close()
            log.info("hermes-webui stopped")
    finally:
        lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
