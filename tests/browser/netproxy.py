"""A TCP proxy that a test can cut, to simulate the network dropping between a browser
and a server that keeps running (Chromium's offline emulation leaves open streams alone)."""
from __future__ import annotations

import socket
import struct
import threading


class CuttableProxy:
    """Forwards ``127.0.0.1:<port>`` to ``127.0.0.1:<upstream_port>``.

    ``cut()`` resets every open connection and refuses new ones (they are accepted and
    reset at once) until ``restore()``. ``close()`` stops it.
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._cut = False
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self._cut:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._conns.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)

    def cut(self) -> None:
        """Drop the network: reset open connections, refuse new ones."""
        self._cut = True
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
        for s in conns:
            _reset(s)

    def restore(self) -> None:
        self._cut = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()


def _reset(sock: socket.socket) -> None:
    """Abort a connection: wake any thread blocked on it, then close without lingering."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
