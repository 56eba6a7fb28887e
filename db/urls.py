"""DATABASE_URL in libpq's own form, and what SQLAlchemy needs to be given instead.

libpq (hence psycopg2, psql, pg_dump) takes several hosts in one URL:
`postgresql://user@host1:5432,host2:5432/wallet?target_session_attrs=read-write` tries
the hosts in order and keeps the first that takes writes, which is how a client finds
the primary of an HA pair (Patroni, pg_auto_failover) after a failover. SQLAlchemy's
URL parser refuses that netloc (it wants one port), but its psycopg2 dialect accepts
the same hosts as repeated `host` query parameters, `postgresql+psycopg2://user@/wallet
?host=host1:5432&host=host2:5432`, and hands libpq `host=host1,host2 port=5432,5432`.
This module turns the one form into the other, and reads and rewrites such URLs for
the rest of the service (the banner, the tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

DEFAULT_PORT = 5432
_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class DatabaseUrl:
    """The parts of a libpq URL (one host or several)."""

    scheme: str  # as given: postgresql, postgres, postgresql+psycopg2
    user: str | None
    password: str | None
    hosts: tuple[tuple[str, int | None], ...]  # in the order libpq tries them
    database: str | None
    query: tuple[tuple[str, str], ...]

    def render(self, hide_password: bool = False) -> str:
        """Back to a libpq URL (`hide_password` for logs and banners)."""
        userinfo = ""
        if self.user is not None:
            userinfo = quote(self.user, safe="")
            if self.password is not None:
                userinfo += ":" + ("***" if hide_password else quote(self.password, safe=""))
            userinfo += "@"
        hosts = ",".join(_hostspec(host, port) for host, port in self.hosts)
        path = "/" + quote(self.database, safe="") if self.database is not None else ""
        query = "?" + urlencode(self.query) if self.query else ""
        return f"{self.scheme}://{userinfo}{hosts}{path}{query}"


def parse(url: str) -> DatabaseUrl:
    """A libpq URL's parts; ValueError if it is not a postgresql:// URL."""
    parts = urlsplit(url)
    if parts.scheme.split("+")[0] not in _SCHEMES:
        raise ValueError(f"not a PostgreSQL URL: {without_password(url)}")
    userinfo, at, hostlist = parts.netloc.rpartition("@")
    user = password = None
    if at:
        name, colon, secret = userinfo.partition(":")
        user = unquote(name)
        password = unquote(secret) if colon else None
    hosts = tuple(_host_and_port(spec) for spec in hostlist.split(",") if spec)
    database = unquote(parts.path[1:]) if len(parts.path) > 1 else None
    return DatabaseUrl(parts.scheme, user, password, hosts, database, tuple(parse_qsl(parts.query)))


def sqlalchemy_url(url: str) -> str:
    """DATABASE_URL as SQLAlchemy should read it: always through psycopg2, and several
    hosts as SQLAlchemy's repeated `host` parameters (which its psycopg2 dialect turns
    back into libpq's lists). SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3;
    this service uses psycopg2."""
    from sqlalchemy.engine import URL, make_url

    parsed = parse(url)
    if len(parsed.hosts) <= 1:  # SQLAlchemy reads these itself
        single = make_url(url)
        if single.drivername in _SCHEMES:
            single = single.set(drivername="postgresql+psycopg2")
        return single.render_as_string(hide_password=False)
    if "+" not in parsed.scheme:
        parsed = _with_scheme(parsed, "postgresql+psycopg2")
    query: dict[str, str | tuple[str, ...]] = {}
    query["host"] = tuple(_hostspec(host, port or DEFAULT_PORT) for host, port in parsed.hosts)
    for key, value in parsed.query:
        if key in ("host", "port", "hostaddr"):
            raise ValueError("give the hosts in the URL's netloc or in its query, not both")
        query[key] = value
    rendered = URL.create(
        parsed.scheme,
        username=parsed.user,
        password=parsed.password,
        database=parsed.database,
        query=query,
    )
    return rendered.render_as_string(hide_password=False)


def with_database(url: str, database: str) -> str:
    """The same servers and credentials, another database."""
    parsed = parse(url)
    return DatabaseUrl(
        parsed.scheme, parsed.user, parsed.password, parsed.hosts, database, parsed.query
    ).render()


def without_password(url: str) -> str:
    """Any URL with its password replaced by `***`, for people to read (several hosts,
    and URLs that are not PostgreSQL's, such as redis://, included)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, tail = rest.rpartition("@")
    if not (sep and at) or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{tail}"


def _with_scheme(parsed: DatabaseUrl, scheme: str) -> DatabaseUrl:
    return DatabaseUrl(
        scheme, parsed.user, parsed.password, parsed.hosts, parsed.database, parsed.query
    )


def _host_and_port(spec: str) -> tuple[str, int | None]:
    if spec.startswith("["):  # [::1]:5432
        host, _, port = spec[1:].partition("]")
        return host, int(port[1:]) if port.startswith(":") else None
    host, colon, port = spec.rpartition(":")
    if not colon:
        return unquote(spec), None
    return unquote(host), int(port) if port else None


def _hostspec(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else quote(host, safe="/%")
    return shown if port is None else f"{shown}:{port}"
