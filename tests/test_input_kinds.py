"""The one parser per kind of input (backends/units.py, parse_keys.py, parse_addresses.py,
parse_pairs.py): what each accepts and refuses, its bounds, and that every example a form shows
as its hint is accepted by the parser behind it."""

import math
from pathlib import Path
from typing import Any

import pytest
from engines.sshd import keygen
from hypothesis import given
from hypothesis import strategies as st

from backends.config import HOST_NAME
from backends.docker_logs import since_param
from backends.errors import Invalid
from backends.parse_addresses import (
    HOST_URL,
    IP_ADDRESS,
    LISTEN,
    PORT,
    PROTOCOL,
    SshTarget,
    parse_host_url,
    parse_listen,
)
from backends.parse_images import IMAGE_REF
from backends.parse_keys import KEYS, is_pasted, key_lines, read_key_file, read_keys
from backends.parse_pairs import ENV, ENV_PAIR, FOLDER, FOLDERS, parse_env, parse_folders
from backends.units import (
    COPIES,
    COUNT,
    DURATION,
    MEMORY_LIMIT,
    SIZE,
    TIME_LIMIT,
    WORKERS,
    YES_NO,
    Grammar,
    field_error,
    parse_duration,
    parse_size,
    written_duration,
    written_size,
)


def refusal(grammar: Grammar[Any], text: str) -> str:
    """The sentence `grammar` refuses `text` with."""
    with pytest.raises(Invalid) as caught:
        grammar.parse(text)
    return str(caught.value)


# --- the hints cannot lie ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "grammar",
    [
        *(SIZE, MEMORY_LIMIT, DURATION, TIME_LIMIT, COUNT, COPIES, WORKERS, YES_NO),
        *(PORT, PROTOCOL, LISTEN, IP_ADDRESS, HOST_URL, HOST_NAME, ENV_PAIR, ENV),
    ],
)
def test_every_example_a_hint_offers_is_accepted(grammar: Grammar[Any]) -> None:
    for example in grammar.examples:
        grammar.parse(example)
        assert example in grammar.hint and example in grammar.example


def test_the_folder_and_key_examples_are_accepted_where_they_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for folder in ("data", "out", "in", "more"):
        (tmp_path / folder).mkdir()
    for grammar in (FOLDER, FOLDERS):
        for example in grammar.examples:
            grammar.parse(example)
    # KEYS' examples: a key line as `ssh-ed25519 AAAA… me@laptop` stands for one, and a .pub file.
    (tmp_path / ".ssh").mkdir()
    key = keygen(tmp_path / ".ssh" / "id_ed25519", "me@laptop")
    kind, _, comment = KEYS.examples[0].split(" ")
    assert KEYS.parse(f"{key} {comment}") == (f"{key} {comment}",) and key.startswith(kind)
    assert KEYS.parse(KEYS.examples[1]) == (f"{key} me@laptop",)


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1m30s500ms", 90.5),
        ("1.5", 1.5),  # a bare number is seconds, as the CLI always took
        ("90", 90),
        (".5s", 0.5),
        (" 10m ", 600),
        ("0s", 0),
    ],
)
def test_durations_one_grammar(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5x", "", "1h30", "ms", "1e3s", "-1s", "1 h", "10M", "٣s", "nan", "inf"])
def test_durations_refused_with_the_grammar(text: str) -> None:
    assert refusal(DURATION, text) == (
        f"Not a duration: {text!r}. Write it like 500ms, 30s, 5m or 1h30m (a bare number is seconds)."
    )


def test_a_time_limit_is_longer_than_zero_and_finite() -> None:
    assert TIME_LIMIT.parse("500ms") == 0.5
    assert refusal(TIME_LIMIT, "0s").startswith("Not a time limit: '0s' (it must be longer than 0 s).")
    assert "too long" in refusal(DURATION, "9" * 400 + "d")


@given(st.integers(min_value=0, max_value=10**12))
def test_a_written_duration_reads_back_the_same(milliseconds: int) -> None:
    seconds = milliseconds / 1000
    written = written_duration(seconds)
    assert parse_duration(written) == seconds and " " not in written


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_any_written_duration_reads_back(seconds: float) -> None:
    assert parse_duration(written_duration(seconds)) == seconds


@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["ms", "s", "m", "h", "d"])), min_size=1))
def test_parts_add_up(parts: list[tuple[int, str]]) -> None:
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    text = "".join(f"{n}{unit}" for n, unit in parts)
    assert math.isclose(parse_duration(text), sum(n * scale[unit] for n, unit in parts))


def test_logs_since_takes_the_same_durations() -> None:
    assert since_param("500ms", 10.0) == "9.500000000"
    with pytest.raises(ValueError):
        since_param("soon", 0)


# --- sizes ------------------------------------------------------------------------------------


def test_sizes_exact_and_bounded() -> None:
    assert parse_size("1.5GiB") == 3 * 2**29 and parse_size("1.1GB") == 1_100_000_000
    assert parse_size("512mib") == 512 * 2**20 and parse_size("  7 ") == 7
    assert parse_size("9" * 40 + "PiB") == int("9" * 40) * 2**50  # no float to overflow
    for bad in ("lots", "", "-1MiB", "1e3", "1.5.5MiB", "٣MiB", "5XB"):
        assert refusal(SIZE, bad) == f"Not a size: {bad!r}. Write it like 512MiB, 2GiB or 1GB."


@given(st.integers(min_value=0, max_value=2**70))
def test_a_written_size_reads_back_the_same(size: int) -> None:
    assert parse_size(written_size(size)) == size


# --- counts -----------------------------------------------------------------------------------


def test_counts_group_their_digits_and_start_at_one() -> None:
    assert [COUNT.parse(t) for t in ("1", "1,000,000", "1_000_000", " 42 ")] == [1, 10**6, 10**6, 42]
    for bad in ("0", "0_000", "", "-1", "1e3", "1,,0", "1.5", "٣"):
        assert refusal(COUNT, bad) == (
            f"Not a number of 1 or more: {bad!r}. Write it like 1, 64 or 1_000_000 "
            "(digits may be grouped with , or _)."
        )


@given(st.integers(min_value=1, max_value=10**30))
def test_a_count_reads_back_however_grouped(number: int) -> None:
    assert COUNT.parse(str(number)) == COUNT.parse(f"{number:,}") == COUNT.parse(f"{number:_}") == number


# --- addresses --------------------------------------------------------------------------------


def test_host_urls() -> None:
    assert parse_host_url("local") is None
    assert parse_host_url("ssh://ops@web-1:2222") == SshTarget("ops", "web-1", 2222)
    assert parse_host_url("ssh://[::1]/") == SshTarget(None, "::1", None)
    assert refusal(HOST_URL, "ops@10.0.0.10") == (
        "Not a host URL: expected local or ssh://user@host[:port], got 'ops@10.0.0.10'. "
        "Write it like local, ssh://user@host or ssh://user@host:2222."
    )
    assert "port 70000 is out of range (1-65535)" in refusal(HOST_URL, "ssh://h:70000")


def test_ports_protocols_and_listen_addresses() -> None:
    assert [PORT.parse(p) for p in ("1", "22", "65535", " 8080 ")] == [1, 22, 65535, 8080]
    for bad in ("0", "65536", "-1", "http", "", "٣"):
        assert refusal(PORT, bad) == (
            f"Not a port number: {bad!r}. Write it like 22, 2222 or 8080 (from 1 to 65535)."
        )
    assert [PROTOCOL.parse(p) for p in ("", "TCP", "udp")] == ["tcp", "tcp", "udp"]
    assert refusal(PROTOCOL, "sctp") == "Not a protocol: 'sctp'. Write it like tcp or udp."
    assert parse_listen("127.0.0.1:4080") == ("127.0.0.1", 4080)
    assert parse_listen("[::1]:0") == ("::1", 0)  # port 0: any free one
    assert parse_listen(":4080") == ("127.0.0.1", 4080)
    for bad in ("4080", "x:99999", "a b:1", "host:"):
        assert refusal(LISTEN, bad).startswith(f"Not a listen address: {bad!r}.")


@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_ports_bounds(number: int) -> None:
    if 1 <= number <= 65535:
        assert PORT.parse(str(number)) == number
    else:
        with pytest.raises(Invalid):
            PORT.parse(str(number))


# --- env pairs and folders ----------------------------------------------------------------------


def test_env_pairs() -> None:
    assert ENV_PAIR.parse("A=b=c") == ("A", "b=c") and ENV_PAIR.parse("EMPTY=") == ("EMPTY", "")
    assert parse_env("LANG=C.UTF-8 NAME='two words'") == (("LANG", "C.UTF-8"), ("NAME", "two words"))
    assert parse_env("") == ()
    for bad in ("x", "=v", "A\0=1"):
        assert refusal(ENV_PAIR, bad) == f"Not a K=V pair: {bad!r}. Write it like LANG=C.UTF-8 or DEBUG=1."
    assert refusal(ENV, "A=1 oops").startswith("Not a K=V pair: 'oops'.")
    assert refusal(ENV, "A='x").startswith("Not a list of K=V pairs: \"A='x\" (no closing quotation).")


@given(
    st.dictionaries(
        st.text("ABCXYZ_", min_size=1, max_size=8),
        st.text(st.characters(exclude_characters="\0"), max_size=20),
    )
)
def test_env_pairs_round_trip_through_shell_words(pairs: dict[str, str]) -> None:
    import shlex

    text = " ".join(shlex.quote(f"{k}={v}") for k, v in pairs.items())
    assert parse_env(text) == tuple(pairs.items())


def test_folders(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    inside = str(folder.resolve())
    assert parse_folders(f"{folder}:/in, {folder}") == ((inside, "/in"), (inside, str(folder)))
    assert parse_folders(" ") == ()
    nope = str(tmp_path / "nope")  # a path is never cut short, however long
    assert refusal(FOLDER, nope).startswith(f"No folder {nope!r} to give the task. Write it like ./data, ")


# --- SSH keys ---------------------------------------------------------------------------------


@pytest.fixture
def key_pair(tmp_path: Path) -> tuple[str, str]:
    return keygen(tmp_path / "a", "a@x"), keygen(tmp_path / "b", "b@x")


def test_pasted_keys_skip_comments_and_blank_lines(key_pair: tuple[str, str]) -> None:
    first, second = key_pair
    pasted = f"# alice's laptop\n{first} a@x\n\n   \n  # and her phone\n{second}\n"
    assert is_pasted(pasted) and read_keys(pasted) == (f"{first} a@x", second)
    assert read_keys("") == () and read_keys("  \n") == ()
    with pytest.raises(Invalid, match="That holds no SSH public key"):
        key_lines("# nothing but a comment\n\n")


def test_a_bad_key_is_named_by_its_line_and_file(key_pair: tuple[str, str], tmp_path: Path) -> None:
    first, _ = key_pair
    pasted = f"# mine\n{first}\n\nssh-ed25519 not-a-key me\n"
    with pytest.raises(Invalid) as caught:
        read_keys(pasted)
    assert caught.value.message.startswith("Not an SSH public key on line 4: 'ssh-ed25519 not-a-key me' (")
    single = "ssh-rsa AAAAnope x"
    with pytest.raises(Invalid, match=r"^Not an SSH public key: 'ssh-rsa AAAAnope x' \("):
        read_keys(single)  # one line: no line number to name
    bad = tmp_path / "bad.pub"
    bad.write_text(pasted)
    with pytest.raises(Invalid, match=rf"^Not an SSH public key on line 4 of {bad}: "):
        read_key_file(bad)
    with pytest.raises(Invalid, match=rf"^No key file '{tmp_path / 'nope.pub'}'\.") as missing:
        read_keys(str(tmp_path / "nope.pub"))
    assert missing.value.hint == "Paste the key itself, or give .pub files."
    assert missing.value.for_cli().endswith("Give a .pub file.")


def test_key_files_comma_separated(key_pair: tuple[str, str], tmp_path: Path) -> None:
    first, second = key_pair
    (tmp_path / "one.pub").write_text(f"{first} a@x\n")
    (tmp_path / "two.pub").write_text(f"# comment\n\n{second} b@x\n")
    assert read_keys(f"{tmp_path / 'one.pub'}, {tmp_path / 'two.pub'}") == (f"{first} a@x", f"{second} b@x")
    with pytest.raises(Invalid, match="holds no SSH public key"):
        (tmp_path / "empty.pub").write_text("# none\n")
        read_keys(str(tmp_path / "empty.pub"))


def test_a_form_names_the_field_before_the_parsers_sentence() -> None:
    exc = DURATION.refuse("5x")
    assert str(field_error("Wall time", exc)) == f"Wall time: {exc}"


def test_copies_and_workers_are_bounded_counts() -> None:
    assert COPIES.parse("10_000") == 10_000 and COPIES.parse("100,000") == 100_000
    assert refusal(COPIES, "100001").startswith("Not a number of copies from 1 to 100,000: '100001' (at most")
    for bad in ("0", "-1", "1e3", "", "ten"):
        assert refusal(COPIES, bad).startswith("Not a number of copies"), bad
    assert WORKERS.parse("max") >= 1 and WORKERS.parse("4") == 4
    for bad in ("0", "-2", "maximum", "2.5"):
        assert refusal(WORKERS, bad).startswith("Not a number of worker processes"), bad
    assert WORKERS.as_text().parse("max") == "max"  # a form for another machine sends the text


def test_memory_limits_are_sizes_or_a_share_of_the_host() -> None:
    assert MEMORY_LIMIT.parse("256MiB") == 256 * 1024**2 and MEMORY_LIMIT.parse("1GB") == 10**9
    assert MEMORY_LIMIT.parse("50%") is None and MEMORY_LIMIT.parse("100%") is None  # LXD reads those
    hint = "Write it like 512MiB, 2GiB or 50% (a percentage is of the host's memory)."
    for bad in ("64M", "1 GiB RAM", "half", "", "%", "5 0%"):
        assert refusal(MEMORY_LIMIT, bad) == f"Not a memory limit: {bad!r}. {hint}"
    for bad in ("0%", "101%"):
        share = "(a share is from 1% to 100%)"
        assert refusal(MEMORY_LIMIT, bad) == f"Not a memory limit: {bad!r} {share}. {hint}"
    assert MEMORY_LIMIT.as_text().parse("50%") == "50%"  # the CLI keeps the text for LXD


def test_yes_or_no_and_nothing_else() -> None:
    assert [YES_NO.parse(t) for t in ("y", "Yes", " n ", "NO")] == [True, True, False, False]
    for bad in ("maybe", "", "true", "1", "yep", "nope"):
        assert refusal(YES_NO, bad) == f"Not a yes/no answer: {bad!r}. Write it like y, yes, n or no."


def test_ip_addresses() -> None:
    assert [IP_ADDRESS.parse(a) for a in ("0.0.0.0", " 127.0.0.1 ", "::1", "fe80::1")] == [
        "0.0.0.0", "127.0.0.1", "::1", "fe80::1"
    ]  # fmt: skip
    for bad in ("999.1.1.1", "localhost", "", "1.2.3", "[::1]", "0.0.0.0:80"):
        assert refusal(IP_ADDRESS, bad) == (
            f"Not an IP address: {bad!r}. Write it like 0.0.0.0, 127.0.0.1 or ::1."
        )


def test_host_names() -> None:
    assert [HOST_NAME.parse(n) for n in ("web-1", "db.lan", "x" * 63)] == ["web-1", "db.lan", "x" * 63]
    hint = "Write it like web-1, db.lan or build_2."
    rule = "expected letters, digits, '.', '_' or '-' (at most 63), starting with a letter or digit"
    for bad in ("", "-web", "web 1", "wéb"):
        assert refusal(HOST_NAME, bad) == f"Not a host name: {bad!r} ({rule}). {hint}"
    assert refusal(HOST_NAME, "x" * 64).startswith(f"Not a host name: '{'x' * 37}...' ({rule}).")
    reserved = "'all' is reserved (`--host all`, `:host add`)"
    assert refusal(HOST_NAME, "all") == f"Not a host name: {reserved}. {hint}"


def test_image_references_as_docker_reads_them() -> None:
    digest = "sha256:" + "ab" * 32
    for ref in ("busybox", "nc2/hello-wasm:1", "localhost:5000/a/b_c__d-e:v1.2", f"ghcr.io/me/x@{digest}"):
        assert IMAGE_REF.parse(f" {ref} ") == ref
    for bad in ("a//b", "http://127.0.0.1/y", "[red]x[/red]", "x:y:z", "NC2/Upper", "a/", "-a", "a" * 600):
        assert refusal(IMAGE_REF, bad).startswith("Not an image reference: "), bad


def test_a_port_of_thousands_of_digits_is_one_sentence() -> None:
    """Python will not read an int of over 4300 digits (ValueError): the port grammar refuses
    it as it refuses any other bad port, before reading it."""
    from backends.parse_addresses import PORT

    with pytest.raises(Invalid, match="Not a port number"):
        PORT.parse("9" * 5000)
