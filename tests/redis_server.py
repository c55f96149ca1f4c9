"""A real redis-server (Debian's package) for tests: 127.0.0.1, a free port, no persistence.

``tools/ensure_redis.sh`` installs it (``.ci/run`` calls it); a test that
needs it fails, never skips, when it is missing. Stopped by PID; ``stop()``
and ``start()`` again on the same port simulate an outage, ``freeze()`` /
``thaw()`` (SIGSTOP / SIGCONT) a hung server.

Options for the hub's other transports and logins: ``password=`` (requirepass),
``unix_socket=`` (a path; ``unix_url``), ``tls=`` (``TLSFiles``: a TLS port
beside the plain one, ``tls_url``). The plain TCP port always stays, for the
test's own commands (``command``, ``clients``, ``publish``).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TLSFiles:
    """PEM files for redis-server's TLS port: its certificate and key, and the CA it trusts for client certificates."""

    cert: Path
    key: Path
    ca: Path


class RedisServer:
    def __init__(
        self,
        port: int | None = None,
        *,
        password: str | None = None,
        unix_socket: str | os.PathLike[str] | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(binary):
            raise RuntimeError("redis-server is missing: run tools/ensure_redis.sh (as root) or apt-get install redis-server")
        self.binary = binary
        self.port = port or free_port()
        self.password = password
        self.unix_socket = None if unix_socket is None else str(unix_socket)
        self.tls = tls
        self.tls_port = free_port() if tls is not None else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        assert self.unix_socket is not None
        return f"unix://{self.unix_socket}"

    @property
    def tls_url(self) -> str:
        """The TLS port's URL, without the ``ssl_*`` options (the test adds what it tries)."""
        assert self.tls_port is not None
        return f"rediss://127.0.0.1:{self.tls_port}/0"

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
        if self.password is not None:
            argv += ["--requirepass", self.password]
        if self.unix_socket is not None:
            argv += ["--unixsocket", self.unix_socket, "--unixsocketperm", "700"]
        if self.tls is not None:
            argv += [
                "--tls-port", str(self.tls_port),
                "--tls-cert-file", str(self.tls.cert),
                "--tls-key-file", str(self.tls.key),
                "--tls-ca-cert-file", str(self.tls.ca),
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
        with self._connect(timeout) as sock:
            sock.sendall(_encode(args))
            reply = b""
            while True:
                chunk = sock.recv(65536)
                reply += chunk
                if not chunk or self._complete(reply):
                    return reply

    def publish(self, channel: bytes, *messages: bytes, timeout: float = 5.0) -> list[int]:
        """PUBLISH each message, all in one write (a subscriber reads them in one burst); each reply: how many received it."""
        with self._connect(timeout) as sock:
            sock.sendall(b"".join(_encode((b"PUBLISH", channel, message)) for message in messages))
            reply = b""
            while reply.count(b"\r\n") < len(messages):  # each reply is one line, ":<n>\r\n"
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("redis-server closed the connection")
                reply += chunk
        return [int(line[1:]) for line in reply.split(b"\r\n")[:-1]]

    def _connect(self, timeout: float) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if self.password is not None:
            sock.sendall(_encode((b"AUTH", self.password.encode())))
            reply = b""
            while not reply.endswith(b"\r\n"):
                reply += sock.recv(1024)
            if reply != b"+OK\r\n":
                sock.close()
                raise RuntimeError(f"AUTH failed: {reply!r}")
        return sock

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


def _encode(args: tuple[bytes, ...]) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


@contextmanager
def redis_server(**options: Any) -> Iterator[RedisServer]:
    """A started ``RedisServer(**options)``, stopped on the way out."""
    server = RedisServer(**options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
