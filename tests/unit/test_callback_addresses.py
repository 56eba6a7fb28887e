"""callback_hosts entries: host or host:port, stored in canonical form."""

import pytest
from marshmallow import ValidationError

from api.schemas import ClientRequestSchema

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
