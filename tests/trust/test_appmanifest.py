"""App manifests: what parses, and every refusal naming its line and reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeward.errors import ManifestError
from edgeward.trust.appmanifest import DEFAULTS, Egress, Plug, parse

GOOD = b'''
name = "minibar"
version = "2.0.1"
publisher = "acme"
summary = "Minibar stock and billing"
plugs = ["network", "bluez", "serial-port:ttyUSB0", "gpio:17"]

[resources]
memory = "48M"
cpu = 0.25
pids = 32

[egress]
allow = ["api.minibar.example:443", "10.20.0.0/16:1883"]

[commands.status]
exec = "bin/status --short"

[daemons.server]
exec = "bin/server --port 8080"
restart = "always"
'''


def test_a_good_manifest_parses() -> None:
    m = parse(GOOD)
    assert (m.name, m.version, m.publisher) == ("minibar", "2.0.1", "acme")
    assert m.plugs == (Plug("network"), Plug("bluez"), Plug("serial-port", "ttyUSB0"),
                       Plug("gpio", "17"))
    assert (m.memory, m.cpu, m.pids) == (48 << 20, 0.25, 32)
    assert m.egress == (Egress("api.minibar.example", 443), Egress("10.20.0.0/16", 1883))
    assert [(p.name, p.argv, p.daemon, p.restart) for p in m.programs] == [
        ("status", ("bin/status", "--short"), False, "never"),
        ("server", ("bin/server", "--port", "8080"), True, "always")]


def test_limits_default_small() -> None:
    m = parse(b'name = "tiny"\nversion = "1"\npublisher = "acme"\nsummary = "x"\n')
    assert (m.memory, m.cpu, m.pids) == (DEFAULTS["memory"], DEFAULTS["cpu"],
                                         DEFAULTS["pids"])
    assert m.plugs == () and m.egress == () and m.programs == ()


@pytest.mark.parametrize(("old", "new", "line", "reason"), [
    (b'name = "minibar"', b'name = "Minibar!"', 2, "name is missing or not valid"),
    (b'plugs = ["network", "bluez", "serial-port:ttyUSB0", "gpio:17"]',
     b'plugs = ["network", "wifi-config"]', 6, "unknown interface 'wifi-config'"),
    (b'"serial-port:ttyUSB0"', b'"serial-port"', 6, "serial-port takes a device"),
    (b'"serial-port:ttyUSB0"', b'"serial-port:../sda"', 6, "serial-port takes a device"),
    (b'"bluez"', b'"bluez:hci0"', 6, "bluez takes no argument"),
    (b'memory = "48M"', b'memory = "48"', 9, "memory is a size"),
    (b'memory = "48M"', b'memory = "8G"', 9, "outside"),
    (b"cpu = 0.25", b"cpu = true", 10, "cpu is a number"),
    (b"pids = 32", b"pids = 100000", 11, "outside"),
    (b"pids = 32", b"swap = 1", 11, "unknown resource 'swap'"),
    (b'"api.minibar.example:443"', b'"api.minibar.example"', 14, "give a port"),
    (b'"10.20.0.0/16:1883"', b'"10.20.0.1/16:1883"', 14, "neither a host name"),
    (b'exec = "bin/status --short"', b'exec = "/bin/sh -c id"', 17, "path inside the image"),
    (b'exec = "bin/status --short"', b'exec = "../../bin/sh"', 17, "path inside the image"),
    (b'restart = "always"', b'restart = "sometimes"', 21, "restart is always"),
    (b'summary = "Minibar stock and billing"', b'summry = "typo"', 5, "unknown key 'summry'"),
])
def test_bad_manifests_are_refused_with_line_and_reason(old: bytes, new: bytes, line: int,
                                                        reason: str) -> None:
    assert old in GOOD
    with pytest.raises(ManifestError) as refused:
        parse(GOOD.replace(old, new, 1))
    assert refused.value.message.startswith(f"app.toml line {line}: ")
    assert reason in refused.value.message


def test_syntax_errors_say_where() -> None:
    with pytest.raises(ManifestError, match=r"app.toml: .*line 3"):
        parse(b'name = "a-b"\nversion = "1"\nplugs = [,]\n')
    with pytest.raises(ManifestError, match="not UTF-8"):
        parse(b"name = \"\xff\"")


@given(st.binary(max_size=512))
def test_any_bytes_parse_or_are_refused_cleanly(data: bytes) -> None:
    try:
        parse(data)
    except ManifestError as e:
        assert "\n" not in e.message


def test_at_most_32_plugs() -> None:
    many = ", ".join(f'"gpio:{n}"' for n in range(33))
    with pytest.raises(ManifestError, match="at most 32 plugs"):
        parse(b'name = "probe"\nversion = "1"\npublisher = "acme"\nsummary = "p"\n'
              + f"plugs = [{many}]\n".encode())
