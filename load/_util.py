"""What load/soak.py and load/faults.py share: the server subprocess and its numbers."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
START_TIMEOUT = 30.0


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 16
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/<pid>/status (VmRSS, VmHWM, Threads...), as bytes where they are sizes."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            parts = value.split()
            if len(parts) == 2 and parts[1] == "kB":
                fields[name] = int(parts[0]) * 1024
            elif len(parts) == 1 and parts[0].isdigit():
                fields[name] = int(parts[0])
    return fields


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def get_json(port: int, path: str, timeout: float = 5.0) -> Any:
    """GET http://127.0.0.1:PORT/path: a direct connection, never an environment proxy."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status}")
        return json.loads(body)
    finally:
        conn.close()


@dataclass
class RSSSampler:
    """Samples the server's VmRSS in a thread: a time series and the peak."""

    pid: int
    interval: float = 0.5
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RSSSampler:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, KeyError):
                self.samples.append((time.monotonic() - self._t0, proc_status(self.pid)["VmRSS"]))
            self._stop.wait(self.interval)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    stats_file: Path
    log_file: Path

    @property
    def base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        return get_json(self.port, "/stats")  # type: ignore[no-any-return]

    def status(self) -> dict[str, int]:
        return proc_status(self.proc.pid)

    def terminate(self, timeout: float) -> tuple[int | None, float]:
        """SIGTERM, then wait (bounded): the exit code (None if it had to be killed) and the time taken.

        uvicorn (>= 0.29) shuts down gracefully on SIGTERM, then raises the
        captured signal again, so a clean exit is ``-SIGTERM``: ``graceful``
        tells it apart from a kill by checking the stats file, written at the
        end of the lifespan shutdown.
        """
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            code = None
        return code, time.monotonic() - start

    @staticmethod
    def graceful(code: int | None) -> bool:
        return code in (0, -signal.SIGTERM)

    def final_stats(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.stats_file.read_text())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""


@contextlib.contextmanager
def server_process(
    workdir: Path, *, codec: str = "ujson", ws: str = "websockets-sansio", pure: bool = False
) -> Iterator[ServerProcess]:
    """load/app.py in a subprocess on 127.0.0.1, a random free port; killed on the way out.

    The socket is bound here (port 0) and inherited by the child, so the port
    is known and no other process can take it in between.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    stats_file = workdir / f"server-stats-{port}.json"
    log_file = workdir / f"server-{port}.log"
    env = dict(os.environ, LOAD_APP_CODEC=codec, LOAD_APP_STATS=str(stats_file), PYTHONUNBUFFERED="1")
    env.pop("BOCADILLO_WS_NO_EXTENSIONS", None)
    if pure:
        env["BOCADILLO_WS_NO_EXTENSIONS"] = "1"
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "app.py"), "--fd", str(sock.fileno()), "--ws", ws],
            pass_fds=[sock.fileno()],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(HERE),  # not the repository root: import the installed bocadillo_ws
        )
    sock.close()  # the child has its own copy
    server = ServerProcess(proc, port, stats_file, log_file)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}:\n{server.log()}")
            try:
                server.stats()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start within {START_TIMEOUT}s:\n{server.log()}") from None
                time.sleep(0.05)
        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def mib(n: int | None) -> str:
    return "?" if n is None else f"{n / (1 << 20):.1f} MiB"
