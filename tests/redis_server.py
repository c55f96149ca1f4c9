"""A real redis-server (Debian's package) for tests: 127.0.0.1, a free port, no persistence.

``tools/ensure_redis.sh`` installs it (``.ci/run`` calls it); a test that
needs it fails, never skips, when it is missing. Stopped by PID; ``stop()``
and ``start()`` again on the same port simulate an outage, ``freeze()`` /
``thaw()`` (SIGSTOP / SIGCONT) a hung server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(binary):
            raise RuntimeError("redis-server is missing: run tools/ensure_redis.sh (as root) or apt-get install redis-server")
        self.binary = binary
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.process is None
        argv = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode} (port {self.port} taken?)")
            if self.ping():
                return
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)

    def ping(self) -> bool:
        try:
            return self.command(b"PING").startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: bytes, timeout: float = 1.0) -> bytes:
        """One command over a fresh connection; the raw RESP reply (enough for PING and CLIENT LIST)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            request = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
            sock.sendall(request)
            reply = b""
            while True:
                chunk = sock.recv(65536)
                reply += chunk
                if not chunk or self._complete(reply):
                    return reply

    @staticmethod
    def _complete(reply: bytes) -> bool:
        if reply[:1] == b"$":
            head, _, rest = reply.partition(b"\r\n")
            size = int(head[1:])
            return size < 0 or len(rest) >= size + 2
        return reply.endswith(b"\r\n")

    def clients(self) -> list[dict[str, str]]:
        """CLIENT LIST, without the connection that asks."""
        reply = self.command(b"CLIENT", b"LIST")
        body = reply.partition(b"\r\n")[2].decode()
        clients = []
        for line in body.splitlines():
            fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
            if fields and fields.get("cmd") != "client|list":
                clients.append(fields)
        return clients

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)  # a frozen server must be able to exit
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def freeze(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
