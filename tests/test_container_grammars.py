"""The grammars of a container's settings (backends/parse_container.py), as `docker run` takes
them: what each accepts and refuses with which sentence, its bounds, that every example a hint
offers is accepted, and that what berth writes back of an engine's value reads back the same."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_input_kinds import refusal

from backends.parse_container import (
    COMMAND,
    CONTAINER_NAME,
    CPUS,
    MAX_CPUS,
    MOUNT,
    MOUNTS,
    PORT_MAPPING,
    PORT_MAPPINGS,
    RESTART_POLICY,
    Mount,
    PortMapping,
    RestartPolicy,
    written_cpus,
    written_restart_policy,
)
from backends.units import Grammar

GRAMMARS = (CONTAINER_NAME, RESTART_POLICY, CPUS, PORT_MAPPING, MOUNT, PORT_MAPPINGS, MOUNTS, COMMAND)


@pytest.mark.parametrize("grammar", GRAMMARS, ids=lambda g: g.kind)
def test_every_example_a_hint_offers_is_accepted(grammar: Grammar[Any]) -> None:
    for example in grammar.examples:
        grammar.parse(example)
        assert example in grammar.hint and example in grammar.example


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["web", "db-1", "my_app.2", "A9", " padded ", "x" * 128])
def test_container_names_docker_takes(text: str) -> None:
    assert CONTAINER_NAME.parse(text) == text.strip()


@pytest.mark.parametrize("text", ["", "a", "-web", ".web", "_web", "we b", "web/1", "wéb", "/web", "a:b"])
def test_container_names_refused(text: str) -> None:
    assert refusal(CONTAINER_NAME, text).startswith(f"Not a container name: {text!r}. Write it like web, ")


def test_a_container_name_is_bounded() -> None:
    assert refusal(CONTAINER_NAME, "x" * 129).startswith("Not a container name: 'xxx") and (
        "(at most 128 characters)." in refusal(CONTAINER_NAME, "x" * 129)
    )


# --- restart policies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("no", RestartPolicy("no", 0)),
        ("always", RestartPolicy("always", 0)),
        ("unless-stopped", RestartPolicy("unless-stopped", 0)),
        ("on-failure", RestartPolicy("on-failure", 0)),
        ("on-failure:3", RestartPolicy("on-failure", 3)),
        ("On-Failure:10000", RestartPolicy("on-failure", 10_000)),
        (" always ", RestartPolicy("always", 0)),
    ],
)
def test_restart_policies(text: str, policy: RestartPolicy) -> None:
    assert RESTART_POLICY.parse(text) == policy


@pytest.mark.parametrize(
    "text", ["", "sometimes", "always:3", "no:1", "unless-stopped:2", "on-failure:", "on-failure:x"]
)
def test_restart_policies_refused(text: str) -> None:
    assert refusal(RESTART_POLICY, text).startswith(f"Not a restart policy: {text!r}")
    assert refusal(RESTART_POLICY, text).endswith("(on-failure[:N] retries at most N times).")


@pytest.mark.parametrize(
    "text", ["on-failure:10001", "on-failure:-1", "on-failure:" + "9" * 5000, "on-failure:٣"]
)
def test_retries_are_bounded(text: str) -> None:
    assert "retries are a count from 0 to 10,000" in refusal(RESTART_POLICY, text)


@given(st.sampled_from(["no", "always", "unless-stopped", "on-failure"]), st.integers(0, 10_000))
def test_a_policy_written_back_reads_the_same(name: str, retries: int) -> None:
    policy = RestartPolicy(name, retries if name == "on-failure" else 0)
    assert RESTART_POLICY.parse(written_restart_policy(policy)) == policy


def test_an_engine_s_empty_policy_is_written_no() -> None:
    assert written_restart_policy(RestartPolicy("", 0)) == "no"


# --- CPUs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "nano"),
    [
        ("0.5", 500_000_000),
        ("2", 2_000_000_000),
        (".5", 500_000_000),
        ("1.", 1_000_000_000),
        ("0.01", 10_000_000),
        ("1.000000001", 1_000_000_001),
        ("1.5000000000000", 1_500_000_000),  # trailing zeros are no precision
        ("0002.25", 2_250_000_000),
        (str(MAX_CPUS), MAX_CPUS * 10**9),
    ],
)
def test_cpus_read_exactly_as_nano_cpus(text: str, nano: int) -> None:
    assert CPUS.parse(text) == nano


@pytest.mark.parametrize("text", ["", "x", ".", "-1", "1e3", "1,5", "½", "٣", "inf", "nan", "0x10"])
def test_cpus_refused(text: str) -> None:
    assert refusal(CPUS, text) == (
        f"Not a number of CPUs: {text!r}. "
        "Write it like 0.5, 1 or 2.5 (from 0.01 to 8192; the host's count at most)."
    )


@pytest.mark.parametrize("text", ["0", "0.009", "0.009999999", "8192.000000001", "9" * 5000, "1" + "0" * 40])
def test_cpus_are_bounded(text: str) -> None:
    assert "(from 0.01 to 8192)." in refusal(CPUS, text)


def test_cpus_have_at_most_nine_decimals() -> None:
    # A tenth decimal would be rounded away by a float or a 28-digit Decimal, and the limit be
    # other than what was asked: it is refused.
    assert "(at most 9 decimals)." in refusal(CPUS, "1.0000000001")
    assert "(at most 9 decimals)." in refusal(CPUS, "1.0000000000000000000000000001")


@given(st.integers(10_000_000, MAX_CPUS * 10**9))
def test_cpus_written_back_read_the_same(nano: int) -> None:
    assert CPUS.parse(written_cpus(nano)) == nano


def test_cpus_are_written_as_people_write_them() -> None:
    assert [written_cpus(n) for n in (500_000_000, 2_000_000_000, 1_250_000_000, 10_000_000)] == [
        "0.5", "2", "1.25", "0.01",
    ]  # fmt: skip


# --- published ports --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mapping"),
    [
        ("8080:80", PortMapping("", 8080, 80, "tcp")),
        ("127.0.0.1:8080:80", PortMapping("127.0.0.1", 8080, 80, "tcp")),
        ("[::1]:8080:80", PortMapping("::1", 8080, 80, "tcp")),
        ("8080:80/udp", PortMapping("", 8080, 80, "udp")),
        ("8080:80/SCTP", PortMapping("", 8080, 80, "sctp")),
        ("80", PortMapping("", None, 80, "tcp")),
        ("53/udp", PortMapping("", None, 53, "udp")),
        ("127.0.0.1::80", PortMapping("127.0.0.1", None, 80, "tcp")),
        ("[::1]::80", PortMapping("::1", None, 80, "tcp")),
        (" 8080:80 ", PortMapping("", 8080, 80, "tcp")),
    ],
)
def test_port_mappings_as_docker_run_p_takes_them(text: str, mapping: PortMapping) -> None:
    assert PORT_MAPPING.parse(text) == mapping


HINT = "Write it like 8080:80, 127.0.0.1:8080:80, [::1]:8080:80, 5353:53/udp or 80"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "('' is no port from 1 to 65535)"),
        ("http", "('http' is no port from 1 to 65535)"),
        ("99999:80", "('99999' is no port from 1 to 65535)"),
        ("8080:0", "('0' is no port from 1 to 65535)"),
        (":80", "('' is no port from 1 to 65535)"),
        ("8080-8090:80", "('8080-8090' is no port from 1 to 65535)"),
        ("80:" + "9" * 5000, "('9999999999999999999999999999999999999..."),
        ("8080:80/icmp", "(the protocol is tcp, udp or sctp)"),
        ("::1:8080:80", ""),
        ("a:b:c:d", ""),
        ("300.0.0.1:8080:80", "('300.0.0.1' is no IPv4 address; IPv6 goes in brackets)"),
        ("[127.0.0.1]:8080:80", "(an IPv6 address goes in brackets before :HOST_PORT:PORT)"),
        ("[::1]8080:80", "(an IPv6 address goes in brackets before :HOST_PORT:PORT)"),
        ("[::1]:80", ""),
    ],
)
def test_port_mappings_refused_saying_why(text: str, why: str) -> None:
    sentence = refusal(PORT_MAPPING, text)
    assert sentence.startswith("Not a port mapping: ") and HINT in sentence
    assert why in sentence


# --- mounts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mount"),
    [
        ("data:/var/lib/data", Mount("volume", "data", "/var/lib/data", False)),
        ("data:/data:ro", Mount("volume", "data", "/data", True)),
        ("data:/data:rw", Mount("volume", "data", "/data", False)),
        ("/srv/site:/usr/share/site:ro", Mount("bind", "/srv/site", "/usr/share/site", True)),
        ("/:/host", Mount("bind", "/", "/host", False)),
        ("/srv/a b:/in", Mount("bind", "/srv/a b", "/in", False)),
    ],
)
def test_mounts_as_docker_run_v_takes_them(text: str, mount: Mount) -> None:
    assert MOUNT.parse(text) == mount


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("data", ""),
        ("a:/data", "('a' is no volume name, and a host path is absolute)"),  # Docker's: 2 at least
        ("data:/d:rx", ""),
        ("data:/d:ro:z", ""),
        ("data:relative", "(the container's path is absolute, and not /)"),
        ("data:/", "(the container's path is absolute, and not /)"),
        ("./here:/in", "('./here' is no volume name, and a host path is absolute)"),
        ("~/here:/in", "('~/here' is no volume name, and a host path is absolute)"),
        (":/in", "('' is no volume name, and a host path is absolute)"),
        ("/a\0b:/in", ""),
    ],
)
def test_mounts_refused_saying_why(text: str, why: str) -> None:
    sentence = refusal(MOUNT, text)
    assert (
        sentence.startswith("Not a mount: ") and "Write it like data:/var/lib/data or /srv/site" in sentence
    )
    assert why in sentence


# --- the lists of a form and the command ------------------------------------------------------


def test_a_form_s_list_is_one_a_line_or_comma_separated() -> None:
    assert PORT_MAPPINGS.parse("8080:80\n 127.0.0.1::53/udp ,, \n") == (
        PortMapping("", 8080, 80, "tcp"),
        PortMapping("127.0.0.1", None, 53, "udp"),
    )
    assert MOUNTS.parse("") == () and PORT_MAPPINGS.parse(" \n ") == ()
    assert MOUNTS.parse("va:/a, /b:/b:ro") == (
        Mount("volume", "va", "/a", False),
        Mount("bind", "/b", "/b", True),
    )


def test_a_list_refuses_with_the_item_s_own_sentence_quoted_as_written() -> None:
    assert refusal(PORT_MAPPINGS, "8080:80,  99999:80").startswith(
        "Not a port mapping: '99999:80' ('99999' is no port from 1 to 65535). Write it like 8080:80"
    )
    assert refusal(MOUNTS, "va:/a\nrel:x").startswith("Not a mount: 'rel:x' (the container's path")


def test_a_command_is_shell_words() -> None:
    assert COMMAND.parse("sh -c 'echo hi; sleep 1'") == ("sh", "-c", "echo hi; sleep 1")
    assert COMMAND.parse("") == ()
    assert refusal(COMMAND, "sh -c 'echo") == (
        'Not a command: "sh -c \'echo" (no closing quotation). '
        "Write it like sleep 60 or sh -c 'echo hi' (shell words; empty: the image's own)."
    )
