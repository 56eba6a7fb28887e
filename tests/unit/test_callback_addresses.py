"""callback_hosts entries and callback URLs: one grammar, matched in canonical form."""

import uuid

import pytest
from marshmallow import ValidationError

from api.schemas import ClientRequestSchema
from db.clients import Client

MALFORMED_HOSTS = [
    "",
    "a b",
    "x:99999",
    "x:65536",
    "x:0",
    "host:",
    "x:+80",
    "x: 80",
    "evil.com/path?x",
    "evil.com#frag",
    "user@host",
    "user:pw@host",
    "[zz]",
    "[::1",
    "[::1]x",
    "[::1]:",
    "[fe80::1%eth0]",
    "::1",
    "-a.com",
    "a-.com",
    "a..com",
    ".a.com",
    "example.com.",
    "a" * 64 + ".com",
    ".".join(["a" * 63] * 4) + ".com",  # over 253 characters
    "ünï.com",
    "xn--nxasmq6b.com:80:80",
    "127.1",  # resolvers read it as 127.0.0.1
    "0x7f.0.0.1",
    "01.2.3.4",
    "1.2.3.4.5",
    "256.0.0.1",
    "host\n",
]


@pytest.mark.parametrize("entry", MALFORMED_HOSTS, ids=repr)
def test_a_callback_hosts_entry_must_be_host_or_host_port(entry):
    with pytest.raises(ValidationError) as error:
        ClientRequestSchema().load({"name": "game", "scopes": ["read"], "callback_hosts": [entry]})
    assert list(error.value.messages) == ["callback_hosts"]


@pytest.mark.parametrize(
    ("entry", "canonical"),
    [
        ("localhost", "localhost"),
        ("hooks.example.com", "hooks.example.com"),
        ("Hooks.Example.COM:8443", "hooks.example.com:8443"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
        ("xn--nxasmq6b.com", "xn--nxasmq6b.com"),
        ("127.0.0.1", "127.0.0.1"),
        ("10.0.0.1:65535", "10.0.0.1:65535"),
        ("host:1", "host:1"),
        ("[::1]", "[::1]"),
        ("[2001:DB8:0:0::1]:8443", "[2001:db8::1]:8443"),
    ],
)
def test_callback_hosts_entries_are_accepted_in_canonical_form(entry, canonical):
    loaded = ClientRequestSchema().load(
        {"name": "game", "scopes": ["read"], "callback_hosts": [entry]}
    )
    assert loaded["callback_hosts"] == [entry]
    from db.clients import callback_host  # what create_client stores

    assert callback_host(entry) == canonical


def _client(*hosts):
    return Client(uuid.uuid4(), "game", frozenset({"submit"}), "whsec_x", tuple(hosts), 1)


@pytest.mark.parametrize(
    ("hosts", "url", "allowed"),
    [
        (["[::1]:9"], "http://[::1]:9/hook", True),
        (["[::1]:9"], "http://[::1]:10/hook", False),
        (["[::1]"], "http://[::1]:4567/hook", True),
        (["[::1]"], "https://[::1]/hook", True),
        (["[2001:db8::1]"], "http://[2001:0DB8:0::1]/", True),
        (["[2001:db8::1]"], "http://[2001:db8::2]/", False),
        (["hooks.example.com"], "https://HOOKS.example.com:8443/x?y=1", True),
        (["hooks.example.com:8443"], "https://hooks.example.com:8443/x", True),
        (["hooks.example.com:8443"], "https://hooks.example.com/x", False),
        (["hooks.example.com:8443"], "https://hooks.example.com:9443/x", False),
        # No port in the URL: it connects to the scheme's, which a host:port entry names.
        (["hooks.example.com:443"], "https://hooks.example.com/x", True),
        (["hooks.example.com:80"], "http://hooks.example.com/x", True),
        (["hooks.example.com:80"], "https://hooks.example.com/x", False),
        (["hooks.example.com:443"], "http://hooks.example.com/x", False),
        (["hooks.example.com"], "http://evil.com/hooks.example.com", False),
        (["hooks.example.com"], "http://hooks.example.com.evil.com/", False),
        (["hooks.example.com"], "http://user@hooks.example.com/", False),
        (["hooks.example.com"], "http://evil.com\\@hooks.example.com/", False),
        (["hooks.example.com"], "ftp://hooks.example.com/", False),
        (["127.0.0.1"], "http://127.1/", False),
        (["Hooks.Example.com"], "http://hooks.example.com/", True),  # a row from before
        (["not a host", "hooks.example.com"], "http://hooks.example.com/", True),
    ],
)
def test_a_callback_url_is_allowed_only_to_a_registered_host_or_host_port(hosts, url, allowed):
    assert _client(*hosts).allows_callback(url) is allowed


UNDELIVERABLE_URLS = [
    " http://hooks.example.com/x",
    "http://hooks.example.com/x ",
    "http://hooks.example.com/a b",
    "\thttp://hooks.example.com/x",
    "http://hooks.example.com/x\n",
    "http://hooks.exa\tmple.com/x",
    "http://hooks.example.com/\x00",
    "http://hooks.example.com/\x01",
    "http://hooks.example.com/\x1f",
    "http://hooks.example.com/\x7f",
    "http://hooks.example.com/\x85",
    "http://hooks.example.com/\u2028",
    "http://hooks.example.com:99999/x",
    "http://hooks.example.com:0/x",
    "http://hooks.example.com:/x",
    "http://hooks.example.com:x/x",
    "http://[hooks.example.com]/x",
    "http://[::1/x",
    "http:///x",
    "http:hooks.example.com/x",
    "hooks.example.com/x",
    "",
]


@pytest.mark.parametrize("url", UNDELIVERABLE_URLS, ids=repr)
def test_a_callback_url_that_could_never_be_delivered_is_not_allowed(url):
    assert not _client("hooks.example.com", "[::1]").allows_callback(url)
