"""The Hub's Redis URLs (bocadillo_ws._redis_url): what is taken, and what is refused at ``Hub(url)``.

A URL option that would change the hub's own connections (its protocol, its
health checks, its timeouts, its retries) is a ``ValueError`` naming the
option when the hub is made, never a subscriber that misbehaves later.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from bocadillo_ws import Hub
from bocadillo_ws._redis_url import RedisAddress, TLSOptions, parse_redis_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6380/2", RedisAddress("127.0.0.1", 6380, None, None, None, 2, None)),
        ("redis://redis.internal", RedisAddress("redis.internal", 6379, None, None, None, 0, None)),
        ("redis://", RedisAddress("localhost", 6379, None, None, None, 0, None)),
        ("redis://h/", RedisAddress("h", 6379, None, None, None, 0, None)),
        ("redis://h?db=5", RedisAddress("h", 6379, None, None, None, 5, None)),
        ("redis://h/5?db=5", RedisAddress("h", 6379, None, None, None, 5, None)),
        ("redis://:s%40cret@h", RedisAddress("h", 6379, None, None, "s@cret", 0, None)),
        ("redis://ana:pw@h:1/3", RedisAddress("h", 1, None, "ana", "pw", 3, None)),
        ("redis://h?username=ana&password=pw", RedisAddress("h", 6379, None, "ana", "pw", 0, None)),
        ("redis://:@h", RedisAddress("h", 6379, None, None, None, 0, None)),
        ("redis://[::1]:7000/1", RedisAddress("::1", 7000, None, None, None, 1, None)),
        ("REDIS://h", RedisAddress("h", 6379, None, None, None, 0, None)),
        ("unix:///run/redis.sock", RedisAddress(None, 0, "/run/redis.sock", None, None, 0, None)),
        ("unix:///run/redis.sock?db=3", RedisAddress(None, 0, "/run/redis.sock", None, None, 3, None)),
        ("unix://:pw@/run/redis.sock", RedisAddress(None, 0, "/run/redis.sock", None, "pw", 0, None)),
        # redis-py's documented unix form: the password in the query
        ("unix:///run/redis.sock?db=1&password=pw", RedisAddress(None, 0, "/run/redis.sock", None, "pw", 1, None)),
        ("unix:///tmp/a%20b.sock", RedisAddress(None, 0, "/tmp/a b.sock", None, None, 0, None)),
        ("rediss://h", RedisAddress("h", 6379, None, None, None, 0, TLSOptions())),
        (
            "rediss://h:6380/0?ssl_cert_reqs=none",
            RedisAddress("h", 6380, None, None, None, 0, TLSOptions(cert_reqs="none", check_hostname=False)),
        ),
        (
            "rediss://h?ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem&ssl_check_hostname=false",
            RedisAddress("h", 6379, None, None, None, 0, TLSOptions("required", False, "/ca.pem", None, "/c.pem", "/k.pem")),
        ),
    ],
)
def test_accepted(url: str, expected: RedisAddress) -> None:
    assert parse_redis_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        # The options of issue 18: the hub's settings cannot be undone.
        ("redis://h/0?protocol=3", "option 'protocol' is not accepted: the hub speaks RESP2"),
        ("redis://h/0?health_check_interval=1", "option 'health_check_interval' is not accepted: the hub checks"),
        ("redis://h/0?socket_timeout=30", "option 'socket_timeout' is not accepted: the hub applies its own timeouts"),
        ("redis://h/0?socket_connect_timeout=9", "'socket_connect_timeout' is not accepted"),
        ("redis://h/0?retry_on_timeout=true", "'retry_on_timeout' is not accepted: the hub never retries a publish"),
        ("redis://h/0?max_connections=50", "'max_connections' is not accepted: the hub opens exactly two"),
        ("redis://h/0?client_name=x", "'client_name' is not accepted: the hub names its connections"),
        ("redis://h/0?decode_responses=true", "'decode_responses' is not accepted"),
        ("redis://h/0?nonsense=1", r"option 'nonsense' is not accepted \(the hub takes only: db, username"),
        ("redis://h/0?db=1&db=2", "option 'db' given twice"),
        ("redis://h/1?db=2", "two databases"),
        ("redis://h/x", "the database must be a number"),
        ("redis://h?db=-1", "the database must be a number"),
        ("redis://h:99999", "Redis URL: Port out of range"),
        ("redis://h:port", "Redis URL: Port could not be cast"),
        ("redis://ana@h", "a username needs a password"),
        ("redis://:a@h?password=b", "both before the host and in the query"),
        ("redis://h/0#frag", "fragment"),
        ("redis://h?ssl_cert_reqs=none", "'ssl_cert_reqs' needs rediss://"),
        ("unix:///s.sock?ssl_ca_certs=/ca.pem", "'ssl_ca_certs' needs rediss://"),
        ("rediss://h?ssl_cert_reqs=maybe", "ssl_cert_reqs must be none, optional or required"),
        ("rediss://h?ssl_check_hostname=perhaps", "ssl_check_hostname must be true or false"),
        ("rediss://h?ssl_cert_reqs=none&ssl_check_hostname=true", "ssl_check_hostname=true needs certificates"),
        ("unix://", "unix:// needs the socket's path"),
        ("unix://host/s.sock", "unix:// takes a path, not a host"),
        ("http://h", "must start with redis://, rediss:// or unix://, got 'http'"),
        ("127.0.0.1:6379", "must start with redis://"),
        ("rediss://h?ssl_ca_certs=/nonexistent/ca.pem", "cannot load the TLS files"),
    ],
)
def test_refused_when_the_hub_is_made(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Hub(url)


def test_a_non_string_url_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="must be a str, got bytes"):
        Hub(b"redis://h")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://ana:secret@h:1/2", "redis://ana:***@h:1/2"),
        ("redis://:secret@h", "redis://:***@h:6379/0"),
        ("rediss://[::1]", "rediss://[::1]:6379/0"),
        ("unix:///run/r.sock?db=4&password=secret", "unix://:***@/run/r.sock?db=4"),
    ],
)
def test_the_address_prints_without_its_password(url: str, shown: str) -> None:
    assert str(parse_redis_url(url)) == shown


def test_tls_options_make_the_context(tmp_path: Path) -> None:
    import trustme  # here, not at the top: free-threaded 3.13 cannot install it (tools/free_threaded_check.py)

    ca = trustme.CA()
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    client = ca.issue_cert("client")
    client.cert_chain_pems[0].write_to_path(tmp_path / "c.pem")
    client.private_key_pem.write_to_path(tmp_path / "k.pem")
    url = f"rediss://h?ssl_ca_certs={tmp_path}/ca.pem&ssl_certfile={tmp_path}/c.pem&ssl_keyfile={tmp_path}/k.pem"
    tls = parse_redis_url(url).tls
    assert tls is not None
    context = tls.context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1
    loose = parse_redis_url("rediss://h?ssl_cert_reqs=optional").tls
    assert loose is not None
    assert loose.context().verify_mode == ssl.CERT_OPTIONAL and not loose.context().check_hostname
