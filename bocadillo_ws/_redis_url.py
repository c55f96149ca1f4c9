"""The Hub's Redis URL, parsed and checked when the Hub is made.

``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (the same over
TLS) and ``unix://[[user]:password@]/path/to/redis.sock[?db=N]``. The query
may hold only the options listed in ``ALLOWED_OPTIONS``; anything else is a
``ValueError`` naming it. The hub runs its own connections (RESP2, its own
timeouts and health checks, its own client name), so an option that would
change them must not be silently taken (docs/hub.md lists what is refused and
why).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

DEFAULT_PORT = 6379
TLS_OPTIONS = (
    "ssl_cert_reqs",
    "ssl_check_hostname",
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_certfile",
    "ssl_keyfile",
)
ALLOWED_OPTIONS = ("db", "username", "password", *TLS_OPTIONS)

_NO_RETRIES = "the hub never retries a publish (that could duplicate it) and reconnects its subscriber itself"
# Options redis-py reads from a URL that would change what the hub's
# connections need: why each one is refused.
_REFUSED = {
    "protocol": "the hub speaks RESP2 on its own connections",
    "health_check_interval": "the hub checks its connections itself (a PING after 1 s of silence)",
    "socket_timeout": "the hub applies its own timeouts (0.5 s per publish batch, docs/hub.md)",
    "socket_connect_timeout": "the hub applies its own timeouts (0.5 s to connect, docs/hub.md)",
    "socket_keepalive": "the hub's connections always use TCP keepalive",
    "retry_on_timeout": _NO_RETRIES,
    "retry_on_error": _NO_RETRIES,
    "max_connections": "the hub opens exactly two connections per process",
    "timeout": "the hub opens exactly two connections per process",
    "client_name": "the hub names its connections bocadillo_ws-hub-<pid>",
    "decode_responses": "the hub reads bytes and decodes them itself",
    "encoding": "the hub reads bytes and decodes them itself",
}
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


@dataclass(frozen=True)
class TLSOptions:
    """The ``ssl_*`` options of a ``rediss://`` URL."""

    cert_reqs: str = "required"  # none | optional | required
    check_hostname: bool = True
    ca_certs: str | None = None  # a PEM file of CA certificates (default: the system's)
    ca_path: str | None = None  # a directory of them
    certfile: str | None = None  # this client's certificate (Redis's tls-auth-clients)
    keyfile: str | None = None

    def context(self) -> ssl.SSLContext:
        """An SSL context for these options (reads the files now: a missing one is a ``ValueError``)."""
        try:
            context = ssl.create_default_context(cafile=self.ca_certs, capath=self.ca_path)
            if self.certfile is not None:
                context.load_cert_chain(self.certfile, self.keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"Redis URL: cannot load the TLS files it names: {exc}") from exc
        context.check_hostname = self.check_hostname
        context.verify_mode = _CERT_REQS[self.cert_reqs]
        return context


@dataclass(frozen=True)
class RedisAddress:
    """Where Redis is and how to log in: what the hub's connections need from the URL."""

    host: str | None  # None for a Unix socket
    port: int
    path: str | None  # the Unix socket's path
    username: str | None
    password: str | None
    db: int
    tls: TLSOptions | None

    def __str__(self) -> str:
        """The URL for logs and errors: the password masked."""
        auth = ""
        if self.password is not None:
            auth = f"{self.username or ''}:***@"
        if self.path is not None:
            return f"unix://{auth}{self.path}?db={self.db}"
        scheme = "redis" if self.tls is None else "rediss"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{scheme}://{auth}{host}:{self.port}/{self.db}"


def parse_redis_url(url: str) -> RedisAddress:
    """Parse a Hub's Redis URL; a ``ValueError`` that names the problem when the hub cannot use it."""
    if not isinstance(url, str):
        raise TypeError(f"the Redis URL must be a str, got {type(url).__name__}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"Redis URL must start with redis://, rediss:// or unix://, got {url.split(':', 1)[0]!r}")
    if parts.fragment:
        raise ValueError("Redis URL: a fragment (#...) means nothing here")
    options = _options(parts.query)
    username = options.pop("username", None)
    password = options.pop("password", None)
    if parts.username or parts.password is not None:
        if username is not None or password is not None:
            raise ValueError("Redis URL: a user or password both before the host and in the query")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
    password = password or None  # "redis://:@host": no password, as redis-py reads it
    if username is not None and password is None:
        raise ValueError("Redis URL: a username needs a password (redis://user:password@host)")
    tls = _tls_options(options, scheme)
    if scheme == "unix":
        path = unquote(parts.path)
        if not path:
            raise ValueError("Redis URL: unix:// needs the socket's path (unix:///run/redis/redis.sock)")
        if parts.hostname:
            raise ValueError(f"Redis URL: unix:// takes a path, not a host ({parts.hostname!r}): unix:///path.sock")
        db = _db(options.pop("db", "0"))
        return RedisAddress(None, 0, path, username, password, db, None)
    db = _db_of(parts.path, options.pop("db", None))
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:  # a port that is not a number, or out of range
        raise ValueError(f"Redis URL: {exc}") from None
    host = parts.hostname or "localhost"
    return RedisAddress(host, port, None, username, password, db, tls)


def _options(query: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in _REFUSED:
            raise ValueError(f"Redis URL option {name!r} is not accepted: {_REFUSED[name]}")
        if name not in ALLOWED_OPTIONS:
            allowed = ", ".join(ALLOWED_OPTIONS)
            raise ValueError(f"Redis URL option {name!r} is not accepted (the hub takes only: {allowed})")
        if name in options:
            raise ValueError(f"Redis URL option {name!r} given twice")
        options[name] = value
    return options


def _tls_options(options: dict[str, str], scheme: str) -> TLSOptions | None:
    given = {name: options.pop(name) for name in TLS_OPTIONS if name in options}
    if scheme != "rediss":
        if given:
            raise ValueError(f"Redis URL option {next(iter(given))!r} needs rediss:// (TLS)")
        return None
    reqs = given.get("ssl_cert_reqs", "required").lower()
    if reqs not in _CERT_REQS:
        raise ValueError(f"Redis URL: ssl_cert_reqs must be none, optional or required, not {reqs!r}")
    check = reqs == "required"
    if "ssl_check_hostname" in given:
        text = given["ssl_check_hostname"].lower()
        if text not in _BOOLEANS:
            raise ValueError(f"Redis URL: ssl_check_hostname must be true or false, not {text!r}")
        check = _BOOLEANS[text]
        if check and reqs == "none":
            raise ValueError("Redis URL: ssl_check_hostname=true needs certificates checked (ssl_cert_reqs=none)")
    return TLSOptions(
        cert_reqs=reqs,
        check_hostname=check,
        ca_certs=given.get("ssl_ca_certs") or None,
        ca_path=given.get("ssl_ca_path") or None,
        certfile=given.get("ssl_certfile") or None,
        keyfile=given.get("ssl_keyfile") or None,
    )


def _db_of(path: str, query_db: str | None) -> int:
    path_db = path.lstrip("/")
    if path_db and query_db is not None and _db(path_db) != _db(query_db):
        raise ValueError(f"Redis URL: two databases, /{path_db} and ?db={query_db}")
    return _db(query_db if query_db is not None else (path_db or "0"))


def _db(text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"Redis URL: the database must be a number (0, 1, ...), not {text!r}")
    return int(text)
