"""The Hub over every way to reach Redis: a Unix socket, TLS, a password, a database; and starts that fail.

Each against a real redis-server started here (tests/redis_server.py), TLS
with a throwaway CA and certificates made by ``trustme``. End to end: two
hubs, a publish in one, the frame in the other's member. A start that fails
(a wrong password, a certificate that does not verify) raises and leaves no
task behind; so does leaving a hub whose Redis never answered.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bocadillo_ws import Hub, HubUnavailable
from hub_helpers import backend_hub, member, settle
from redis_server import RedisServer, TLSFiles, free_port, redis_server

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@pytest.fixture
def hub_class(impl: Any) -> type[Hub]:
    return backend_hub(impl)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, a client certificate, and a second CA nobody uses."""
    import trustme  # here, not at the top: free-threaded 3.13 cannot install it (tools/free_threaded_check.py)

    root = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("bocadillo-ws-test-client")
    files = {
        "ca": root / "ca.pem",
        "server_cert": root / "server.pem",
        "server_key": root / "server.key",
        "client_cert": root / "client.pem",
        "client_key": root / "client.key",
        "other_ca": root / "other-ca.pem",
    }
    ca.cert_pem.write_to_path(files["ca"])
    server.cert_chain_pems[0].write_to_path(files["server_cert"])
    server.private_key_pem.write_to_path(files["server_key"])
    client.cert_chain_pems[0].write_to_path(files["client_cert"])
    client.private_key_pem.write_to_path(files["client_key"])
    trustme.CA().cert_pem.write_to_path(files["other_ca"])
    return files


@pytest.fixture
def tls_redis(pki: dict[str, Path]) -> Iterator[RedisServer]:
    with redis_server(tls=TLSFiles(pki["server_cert"], pki["server_key"], pki["ca"])) as server:
        yield server


async def until(condition: Any, within: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(0.005)


async def crosses(hub_class: type[Hub], WebSocket: type[Any], url: str) -> None:
    """Two hubs on ``url``: text and bytes published in one reach a member of the other, once, in order."""
    async with hub_class(url) as one, hub_class(url) as two:
        ws, peer = await member(WebSocket)
        async with two.join("r", ws):
            await one.publish("r", {"n": 1})
            await one.publish_bytes("r", b"\x00\xff")
            await one.publish_text("r", "héllo")
            await until(lambda: len(peer.frames) == 3)
            await asyncio.sleep(0.05)
        assert peer.frames == ['{"n":1}', b"\x00\xff", "héllo"]
        assert one.stats().gaps == two.stats().gaps == 0


def hub_clients(redis: RedisServer) -> list[dict[str, str]]:
    return [c for c in redis.clients() if c.get("name", "").startswith("bocadillo_ws-hub-")]


def own_tasks(before: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task not in before and not task.done()}


# --------------------------------------------------------------------------- transports


async def test_a_unix_socket(hub_class: type[Hub], WebSocket: type[Any], tmp_path: Path) -> None:
    with redis_server(unix_socket=tmp_path / "redis.sock") as redis:
        await crosses(hub_class, WebSocket, redis.unix_url)
        async with hub_class(redis.unix_url + "?db=2"):
            clients = hub_clients(redis)
            assert len(clients) == 2
            assert all(c["addr"].startswith(str(tmp_path)) and c["db"] == "2" for c in clients), clients


async def test_tls_with_a_client_certificate(
    hub_class: type[Hub], WebSocket: type[Any], tls_redis: RedisServer, pki: dict[str, Path]
) -> None:
    # redis-server's default tls-auth-clients is "yes": it wants a client certificate.
    url = f"{tls_redis.tls_url}?ssl_ca_certs={pki['ca']}&ssl_certfile={pki['client_cert']}&ssl_keyfile={pki['client_key']}"
    await crosses(hub_class, WebSocket, url)


async def test_tls_with_a_certificate_no_one_vouches_for_is_refused_at_start(
    tls_redis: RedisServer, pki: dict[str, Path]
) -> None:
    url = f"{tls_redis.tls_url}?ssl_ca_certs={pki['other_ca']}&ssl_certfile={pki['client_cert']}&ssl_keyfile={pki['client_key']}"
    before = asyncio.all_tasks()
    with pytest.raises(HubUnavailable, match=r"refused the hub's connection: .*CERTIFICATE_VERIFY_FAILED"):
        async with Hub(url):
            pass
    await settle()
    assert own_tasks(before) == set()


async def test_tls_without_the_client_certificate_redis_wants_is_refused(
    tls_redis: RedisServer, pki: dict[str, Path]
) -> None:
    before = asyncio.all_tasks()
    with pytest.raises(HubUnavailable, match="refused the hub's connection"):
        async with Hub(f"{tls_redis.tls_url}?ssl_ca_certs={pki['ca']}"):
            pass
    await settle()
    assert own_tasks(before) == set()


async def test_a_password_and_a_database(hub_class: type[Hub], WebSocket: type[Any]) -> None:
    with redis_server(password="s3cret/:@") as redis:
        url = f"redis://:s3cret%2F%3A%40@127.0.0.1:{redis.port}/3"
        await crosses(hub_class, WebSocket, url)
        async with hub_class(url):
            clients = hub_clients(redis)
            assert len(clients) == 2 and {c["db"] for c in clients} == {"3"}, clients


async def test_a_wrong_password_is_refused_at_start_and_leaves_no_task() -> None:
    with redis_server(password="right") as redis:
        before = asyncio.all_tasks()
        with pytest.raises(HubUnavailable, match="refused the hub's connection: AUTH failed: WRONGPASS"):
            async with Hub(f"redis://:wrong@127.0.0.1:{redis.port}/0"):
                pass
        await settle()
        assert own_tasks(before) == set()
        assert hub_clients(redis) == []
        # No password at all: every command is refused (NOAUTH).
        with pytest.raises(HubUnavailable, match="NOAUTH"):
            async with Hub(redis.url):
                pass
        assert own_tasks(before) == set()


async def test_a_database_redis_does_not_have_is_refused_at_start() -> None:
    with redis_server() as redis:
        with pytest.raises(HubUnavailable, match="SELECT failed: ERR DB index is out of range"):
            async with Hub(f"redis://127.0.0.1:{redis.port}/99"):
                pass


async def test_a_server_that_is_not_redis_is_refused_at_start() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        before = asyncio.all_tasks()
        with pytest.raises(HubUnavailable, match="not RESP2"):
            async with Hub(f"redis://127.0.0.1:{port}/0"):
                pass
        await settle()
        assert own_tasks(before) == set()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("redis_state", ["not listening", "frozen"])
async def test_a_redis_that_does_not_answer_starts_in_the_background_and_leaves_no_task(
    hub_class: type[Hub], WebSocket: type[Any], redis_state: str
) -> None:
    with redis_server() as redis:
        if redis_state == "frozen":
            redis.freeze()  # accepts TCP connections (the kernel does), never answers
        else:
            redis.stop()
        before = asyncio.all_tasks()
        async with hub_class(redis.url) as hub:  # works locally meanwhile
            assert own_tasks(before)  # the reader and the writer, retrying
            ws, peer = await member(WebSocket)
            async with hub.join("r", ws):
                with pytest.raises(HubUnavailable, match="did not take the message"):
                    await hub.publish("r", 1)
            assert peer.texts == [1]
        await settle()
        assert own_tasks(before) == set()


async def test_leaving_a_hub_cancelled_while_it_starts_leaves_no_task() -> None:
    before = asyncio.all_tasks()
    task = asyncio.create_task(Hub(f"redis://127.0.0.1:{free_port()}/0").__aenter__())
    await asyncio.sleep(0.1)  # inside start(), waiting for the subscriber
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settle()
    assert own_tasks(before) == set()


def test_the_hub_needs_no_redis_client_library() -> None:
    # A process where `import redis` fails: the hub talks to Redis all the same.
    with redis_server() as redis:
        script = textwrap.dedent(
            f"""
            import asyncio, sys
            sys.modules["redis"] = None  # import redis -> ImportError
            from bocadillo_ws import Hub

            async def main():
                async with Hub({redis.url!r}) as hub:
                    await hub.publish("r", "no redis-py")
                    print("published")

            asyncio.run(main())
            """
        )
        # -I: the installed package, not the source tree of the current directory.
        result = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "published"
