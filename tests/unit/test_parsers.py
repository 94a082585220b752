"""The parsers of pointers, manifests, config and YAML refuse bad input with a ReproError.

Every file repro reads may come from someone else (a clone, a pull, a crafted cache object), so
each defect must become an InvalidFileError or UnsafePathError naming the file — never another
exception, never a silently accepted value (DESIGN §3, §4 invariant 5).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reprocli.core import config, manifest, pointer, yamlio
from reprocli.core.paths import RepoPath
from reprocli.core.remotes import has_userinfo_secret, redact
from reprocli.errors import InvalidFileError, ReproError, UnsafePathError

OID = "6bba86c7e069f56d5a10b435f1c8e49c"
OID2 = "a96faf705af16834e6c632b61e964e1f"
REFUSED = (InvalidFileError, UnsafePathError)
FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

GOOD_POINTER = f"version: 1\nouts:\n- path: data\n  hash: xxh3-128\n  oid: {OID}\n  size: 6\n"


def _pointer_text(**fields: str) -> bytes:
    """A file pointer with some `outs` fields replaced (a value of "" drops the line)."""
    values = {"path": "data", "hash": "xxh3-128", "oid": OID, "size": "6"} | fields
    lines = ["version: 1", "outs:"]
    first = True
    for key, value in values.items():
        if value == "":
            continue
        lines.append(("- " if first else "  ") + f"{key}: {value}")
        first = False
    return ("\n".join(lines) + "\n").encode("utf-8")


def _refused(call: Callable[[], Any], *names: str) -> ReproError:
    """Run `call`, require an InvalidFileError or UnsafePathError whose message has `names`."""
    with pytest.raises(REFUSED) as caught:
        call()
    message = str(caught.value)
    for name in names:
        assert name in message, message
    assert "\n" not in message, f"an error message must be one line: {message!r}"
    return caught.value


def _decode_pointer(data: bytes, file: str = "data.repro") -> pointer.Pointer:
    return pointer.decode(data, file=RepoPath(file))


# --- pointers -----------------------------------------------------------------------------


def test_the_reference_pointer_is_accepted() -> None:
    ptr = _decode_pointer(GOOD_POINTER.encode())
    assert (ptr.data, ptr.oid, ptr.size, ptr.nfiles, ptr.exec) == ("data", OID, 6, None, False)
    nested = _decode_pointer(GOOD_POINTER.encode(), "sub/dir/data.repro")
    assert nested.data == "sub/dir/data"


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "..",
        "../data",
        "a/../../data",
        "a/..",
        ".git",
        ".git/hooks/post-checkout",
        "a/.git/config",
        ".GIT/config",
        '"a\\\\b"',
        '"a\\u0000b"',
        '"a\\nb"',
        '"a\\tb"',
        '"a\\x7fb"',
        '""',
        ".",
        "./data",
        "a//b",
        "a/",
        "1",
        "null",
        "[a]",
        "{a: b}",
    ],
)
def test_a_pointer_path_that_is_unsafe_or_not_a_path_is_refused(path: str) -> None:
    _refused(lambda: _decode_pointer(_pointer_text(path=path)), "data.repro")


@pytest.mark.parametrize(
    "oid",
    [
        OID.upper(),
        OID[:-1],
        OID + "0",
        "g" * 32,
        f"{OID}.DIR",
        f"{OID}.dir.dir",
        f"{OID}.txt",
        f'"{OID} "',
        "12345",
        "null",
        '""',
        "",
    ],
)
def test_a_malformed_pointer_oid_is_refused(oid: str) -> None:
    _refused(lambda: _decode_pointer(_pointer_text(oid=oid)), "data.repro")


@pytest.mark.parametrize("size", ["-1", '"6"', "6.0", "1e3", "true", "null", ".inf", "[6]", ""])
def test_a_pointer_size_that_is_not_a_whole_number_of_bytes_is_refused(size: str) -> None:
    _refused(lambda: _decode_pointer(_pointer_text(size=size)), "data.repro")


@pytest.mark.parametrize("digest", ["md5", "xxh3-64", "XXH3-128", "null", ""])
def test_a_pointer_with_another_hash_algorithm_is_refused(digest: str) -> None:
    _refused(lambda: _decode_pointer(_pointer_text(hash=digest)), "data.repro")


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"oid": f"{OID}.dir"}, "directory without nfiles"),
        ({"oid": f"{OID}.dir", "nfiles": "-1"}, "negative nfiles"),
        ({"oid": f"{OID}.dir", "nfiles": '"3"'}, "nfiles as text"),
        ({"oid": f"{OID}.dir", "nfiles": "true"}, "nfiles as a boolean"),
        ({"oid": f"{OID}.dir", "nfiles": "3.0"}, "nfiles as a float"),
        ({"nfiles": "3"}, "nfiles on a file"),
        ({"exec": '"true"'}, "exec as text"),
        ({"exec": "1"}, "exec as a number"),
        ({"exec": "null"}, "exec as null"),
        ({"oid": f"{OID}.dir", "nfiles": "3", "exec": "true"}, "exec on a directory"),
        ({"color": "red"}, "unknown key in outs"),
    ],
)
def test_a_pointer_with_inconsistent_fields_is_refused(fields: dict[str, str], why: str) -> None:
    _refused(lambda: _decode_pointer(_pointer_text(**fields)), "data.repro")


@pytest.mark.parametrize(
    "text",
    [
        GOOD_POINTER.replace("version: 1", "version: 2"),
        GOOD_POINTER.replace("version: 1", "version: 0"),
        GOOD_POINTER.replace("version: 1", 'version: "1"'),
        GOOD_POINTER.replace("version: 1", "version: true"),
        GOOD_POINTER.replace("version: 1", "version: 1.0"),
        GOOD_POINTER.replace("version: 1\n", ""),
    ],
    ids=["2", "0", "text", "true", "float", "missing"],
)
def test_a_pointer_of_another_version_is_refused(text: str) -> None:
    _refused(lambda: _decode_pointer(text.encode()), "data.repro")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "null\n",
        "- version: 1\n",
        "just text\n",
        "version: 1\n",
        "version: 1\nouts: []\n",
        "version: 1\nouts: {path: data}\n",
        "version: 1\nouts:\n- data\n",
        GOOD_POINTER + "- path: other\n  hash: xxh3-128\n  oid: " + OID + "\n  size: 6\n",
        GOOD_POINTER + "extra: 1\n",
        GOOD_POINTER[: len(GOOD_POINTER) // 2],
        GOOD_POINTER[:-12],
    ],
    ids=[
        "empty",
        "blank",
        "null",
        "list",
        "scalar",
        "no outs",
        "no entries",
        "outs a mapping",
        "entry a string",
        "two entries",
        "unknown top-level key",
        "truncated half",
        "truncated end",
    ],
)
def test_a_pointer_with_the_wrong_shape_is_refused(text: str) -> None:
    _refused(lambda: _decode_pointer(text.encode()), "data.repro")


@pytest.mark.parametrize(
    "data",
    [
        GOOD_POINTER.replace("  size: 6\n", "  size: 6\n  size: 7\n").encode(),
        (GOOD_POINTER + "version: 1\n").encode(),
        GOOD_POINTER.replace("- path: data", "- path: &p data").encode(),
        GOOD_POINTER.replace("  hash: xxh3-128", "  hash: &h xxh3-128\n  oid2: *h").encode(),
        GOOD_POINTER.replace("size: 6", "size: !!python/object/apply:os.getpid []").encode(),
        GOOD_POINTER.replace("size: 6", "size: !!binary Ng==").encode(),
        GOOD_POINTER.encode() + b"---\nversion: 1\n",
        GOOD_POINTER.replace("data", "d\xe4ta").encode("latin-1"),
        b"\xff\xfe" + GOOD_POINTER.encode("utf-16-le"),
        GOOD_POINTER.encode() + b"\x00",
        GOOD_POINTER.encode() + b"#" * (64 * 1024),
        b"[" * 5000 + b"]" * 5000,
        b"a:\n" + b"".join(b" " * i + b"- \n" for i in range(2000)),
    ],
    ids=[
        "duplicate key in outs",
        "duplicate top-level key",
        "anchor",
        "alias",
        "python tag",
        "binary tag",
        "two documents",
        "latin-1",
        "utf-16",
        "NUL byte",
        "over 64 KiB",
        "deep flow nesting",
        "deep block nesting",
    ],
)
def test_a_pointer_that_is_not_plain_strict_yaml_is_refused(data: bytes) -> None:
    _refused(lambda: _decode_pointer(data), "data.repro")


def _only_repro_errors(call: Callable[[], Any]) -> None:
    """Run `call`; any exception but a ReproError fails the test."""
    with contextlib.suppress(ReproError):
        call()


@FUZZ
@given(data=st.binary(max_size=2048))
def test_decoding_any_bytes_as_a_pointer_raises_only_repro_errors(data: bytes) -> None:
    _only_repro_errors(lambda: _decode_pointer(data))


@FUZZ
@given(text=st.text(max_size=1024))
def test_decoding_any_text_as_a_pointer_raises_only_repro_errors(text: str) -> None:
    _only_repro_errors(lambda: _decode_pointer(text.encode("utf-8", "surrogatepass")))


@FUZZ
@given(
    cuts=st.lists(
        st.tuples(st.integers(0, len(GOOD_POINTER)), st.integers(0, 8), st.text(max_size=6)),
        min_size=1,
        max_size=4,
    )
)
def test_decoding_a_mangled_pointer_raises_only_repro_errors(
    cuts: list[tuple[int, int, str]],
) -> None:
    text = GOOD_POINTER
    for at, length, insert in cuts:
        text = text[:at] + insert + text[at + length :]
    _only_repro_errors(lambda: _decode_pointer(text.encode("utf-8", "surrogatepass")))


# --- manifests ----------------------------------------------------------------------------


def _entry(
    path: object, oid: object = OID, size: object = 6, exec_: object = False
) -> dict[str, object]:
    return {"exec": exec_, "oid": oid, "path": path, "size": size}


def _manifest(*entries: object) -> bytes:
    return json.dumps(list(entries)).encode("utf-8")


def _decode_manifest(data: bytes) -> list[manifest.Entry]:
    return manifest.decode(data, where="data.repro: manifest X.dir")


def test_a_sound_manifest_is_accepted() -> None:
    entries = _decode_manifest(_manifest(_entry("a"), _entry("a-b"), _entry("a0/b", OID2, 1, True)))
    assert [(e.path, e.oid, e.size, e.exec) for e in entries] == [
        ("a", OID, 6, False),
        ("a-b", OID, 6, False),
        ("a0/b", OID2, 1, True),
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/etc/x",
        "../x",
        "a/../../x",
        "a/..",
        "..",
        ".git/hooks/x",
        "a/.git/config",
        ".Git/hooks/x",
        "a\\b",
        "..\\x",
        "a\x00b",
        "a\nb",
        "a\rb",
        "a\x1bb",
        "a\x7fb",
        "",
        ".",
        "./a",
        "a//b",
        "a/",
        "/",
        1,
        None,
        ["a"],
    ],
)
def test_a_manifest_entry_with_an_unsafe_path_is_refused(path: object) -> None:
    _refused(lambda: _decode_manifest(_manifest(_entry(path))), "manifest X.dir")


@pytest.mark.parametrize(
    "oid",
    [
        OID.upper(),
        OID[:-1],
        OID + "0",
        "z" * 32,
        f"{OID}.dir",
        f"{OID}.DIR",
        f" {OID}",
        f"{OID}\n",
        int(OID[:8], 16),
        None,
        "",
    ],
)
def test_a_manifest_entry_with_a_bad_oid_is_refused(oid: object) -> None:
    _refused(lambda: _decode_manifest(_manifest(_entry("a", oid=oid))), "manifest X.dir")


@pytest.mark.parametrize("size", [-1, 6.0, 1e400, "6", True, None, [6]])
def test_a_manifest_entry_with_a_bad_size_is_refused(size: object) -> None:
    _refused(lambda: _decode_manifest(_manifest(_entry("a", size=size))), "manifest X.dir")


@pytest.mark.parametrize("exec_", [0, 1, "true", None, []])
def test_a_manifest_entry_whose_exec_is_not_a_boolean_is_refused(exec_: object) -> None:
    _refused(lambda: _decode_manifest(_manifest(_entry("a", exec_=exec_))), "manifest X.dir")


@pytest.mark.parametrize(
    "entries",
    [
        [_entry("b"), _entry("a")],
        [_entry("a"), _entry("a")],
        [_entry("a/b"), _entry("a-b")],
        [_entry("a"), _entry("a/b")],
        [_entry("a"), _entry("a-x"), _entry("a/b/c")],
        [_entry("x/a"), _entry("x/a/b")],
    ],
    ids=[
        "out of order",
        "duplicate",
        "slash sorts after dash",
        "file as folder",
        "file as distant folder",
        "nested file as folder",
    ],
)
def test_a_manifest_whose_entries_are_unsorted_duplicated_or_overlapping_is_refused(
    entries: list[dict[str, object]],
) -> None:
    _refused(lambda: _decode_manifest(_manifest(*entries)), "manifest X.dir")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{}",
        b"null",
        b'"a"',
        b"[1]",
        b'[["a"]]',
        b"[" + json.dumps(_entry("a")).encode(),
        json.dumps([{"oid": OID, "path": "a", "size": 6}]).encode(),
        json.dumps([_entry("a") | {"mode": 420}]).encode(),
        b"\xff\xfe[]",
        "[]".encode("utf-16"),
        b"[NaN]",
        b"[" * 100_000 + b"]" * 100_000,
        b'[{"exec":false,"oid":"' + OID.encode() + b'","path":"a","size":' + b"9" * 5000 + b"}]",
    ],
    ids=[
        "empty",
        "object",
        "null",
        "string",
        "number entry",
        "list entry",
        "truncated",
        "missing key",
        "extra key",
        "not UTF-8",
        "UTF-16",
        "NaN",
        "deep nesting",
        "huge number",
    ],
)
def test_a_manifest_that_is_not_a_json_list_of_entries_is_refused(data: bytes) -> None:
    _refused(lambda: _decode_manifest(data), "manifest X.dir")


@FUZZ
@given(data=st.binary(max_size=2048))
def test_decoding_any_bytes_as_a_manifest_raises_only_repro_errors(data: bytes) -> None:
    _only_repro_errors(lambda: _decode_manifest(data))


@FUZZ
@given(text=st.text(max_size=1024))
def test_decoding_any_text_as_a_manifest_raises_only_repro_errors(text: str) -> None:
    _only_repro_errors(lambda: _decode_manifest(text.encode("utf-8", "surrogatepass")))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=20,
)


@FUZZ
@given(
    entries=st.lists(
        st.fixed_dictionaries(
            {
                "exec": st.booleans() | _JSON,
                "oid": st.sampled_from([OID, OID2, OID + ".dir", OID.upper()]) | _JSON,
                "path": st.sampled_from(["a", "a/b", "b", "../x", ".git/x", "a\\b"])
                | st.text(max_size=8)
                | _JSON,
                "size": st.integers(-2, 10) | _JSON,
            }
        ),
        max_size=6,
    )
)
def test_decoding_any_list_of_entry_shaped_objects_raises_only_repro_errors(
    entries: list[dict[str, object]],
) -> None:
    _only_repro_errors(lambda: _decode_manifest(json.dumps(entries).encode()))


# --- config -------------------------------------------------------------------------------


def _read_config(tmp_path: Path, text: bytes, level: config.Level = "repo") -> dict[str, Any]:
    file = tmp_path / "config.yaml"
    file.write_bytes(text)
    return config.read_level(file, level)


def test_a_sound_config_is_accepted(tmp_path: Path) -> None:
    text = (
        b"version: 1\ncore:\n  autostage: false\n  remote: origin\ncache:\n  type: reflink,copy\n"
        b"remotes:\n  origin:\n    url: s3://bucket/prefix\n"
    )
    assert _read_config(tmp_path, text) == {
        "version": 1,
        "core": {"autostage": False, "remote": "origin"},
        "cache": {"type": "reflink,copy"},
        "remotes": {"origin": {"url": "s3://bucket/prefix"}},
    }


def test_a_chained_remote_url_is_accepted_in_the_local_config(tmp_path: Path) -> None:
    text = b"remotes:\n  c:\n    url: simplecache::s3://b/p\n"
    assert _read_config(tmp_path, text, "local") == {
        "remotes": {"c": {"url": "simplecache::s3://b/p"}}
    }


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pa55@host/p", "https://user:***@host/p"),
        ("https://T0KEN@huggingface.co/d", "https://***@huggingface.co/d"),
        ("simplecache::https://T0KEN@host/p", "simplecache::https://***@host/p"),
        ("ssh://git@host/p", "ssh://git@host/p"),
        ("sftp://me:pa55@host/p", "sftp://me:***@host/p"),
        ("s3://bucket/p", "s3://bucket/p"),
        ("https://host/p?q=a@b", "https://host/p?q=a@b"),
        ("failed on //u:pa55@host: reset", "failed on //u:***@host: reset"),
    ],
)
def test_redact_hides_passwords_and_bare_tokens_in_userinfo(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert has_userinfo_secret(url) == (shown != url)


def test_cache_dir_is_accepted_in_the_local_config(tmp_path: Path) -> None:
    assert _read_config(tmp_path, b"cache:\n  dir: /shared/cache\n", "local") == {
        "cache": {"dir": "/shared/cache"}
    }


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (b"core:\n  bogus: 1\n", ["core.bogus"]),
        (b"colour: red\n", ["colour"]),
        (b"core:\n  autostage: 1\n", ["core.autostage"]),
        (b'core:\n  autostage: "yes"\n', ["core.autostage"]),
        (b"core:\n  remote: 3\n", ["core.remote"]),
        (b"core: true\n", ["core"]),
        (b"core:\n- autostage\n", ["core"]),
        (b"cache:\n  dir: /elsewhere\n", ["cache.dir", "tracked"]),
        (b"version: 2\n", ["version"]),
        (b'version: "1"\n', ["version"]),
        (b"version: true\n", ["version"]),
        (b"version: 1.0\n", ["version"]),
        (b"- core\n", []),
        (b"just text\n", []),
        (b"remotes: [origin]\n", ["remotes"]),
        (b"remotes:\n  origin: s3://bucket\n", ["origin"]),
        (b"remotes:\n  origin:\n    url: 42\n", ["origin"]),
        (b"core:\n  autostage: true\n  autostage: false\n", ["duplicate"]),
        (b"core: &c\n  autostage: true\ncache: *c\n", ["anchors"]),
        (b"core:\n  remote: !!python/name:os.system\n", []),
        (b"core:\n  remote: caf\xe9\n", ["UTF-8"]),
        (b"core:\n  remote: x\n" + b"#" * (1 << 20), ["larger"]),
        (b"core:\n\tautostage: true\n", []),
        (b"remotes:\n  c:\n    url: simplecache::s3://b/p\n", ["'c'", "chained", "tracked"]),
    ],
    ids=[
        "unknown option",
        "unknown section",
        "wrong type int",
        "wrong type text",
        "remote not text",
        "section a scalar",
        "section a list",
        "cache.dir tracked",
        "version 2",
        "version text",
        "version true",
        "version float",
        "a list",
        "a scalar",
        "remotes a list",
        "remote a string",
        "url not text",
        "duplicate key",
        "anchor and alias",
        "python tag",
        "not UTF-8",
        "over 1 MiB",
        "tab indent",
        "chained url tracked",
    ],
)
def test_a_bad_config_file_is_refused_naming_the_file(
    tmp_path: Path, text: bytes, names: list[str]
) -> None:
    _refused(lambda: _read_config(tmp_path, text), str(tmp_path / "config.yaml"), *names)


def test_a_config_path_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "config.yaml"
    folder.mkdir()
    _refused(lambda: config.read_level(folder, "repo"), str(folder))


def test_an_unknown_link_type_is_refused_when_the_config_is_loaded(tmp_path: Path) -> None:
    repro_dir = tmp_path / ".repro"
    repro_dir.mkdir()
    (repro_dir / "config.yaml").write_bytes(b"cache:\n  type: reflink,teleport\n")
    _refused(lambda: config.load(repro_dir), "config.yaml", "teleport")


@FUZZ
@given(data=st.binary(max_size=2048))
def test_reading_any_bytes_as_a_config_raises_only_repro_errors(
    tmp_path: Path, data: bytes
) -> None:
    _only_repro_errors(lambda: _read_config(tmp_path, data))


@FUZZ
@given(text=st.text(max_size=1024))
def test_reading_any_text_as_a_config_raises_only_repro_errors(tmp_path: Path, text: str) -> None:
    _only_repro_errors(lambda: _read_config(tmp_path, text.encode("utf-8", "surrogatepass")))


# --- yamlio -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"a: 1\na: 2\n", "y.yaml:2: duplicate key 'a'"),
        (b"{a: 1, a: 2}\n", "duplicate key"),
        (b"a:\n  b: 1\n  b: 1\n", "duplicate key"),
        (b"a: &x 1\n", "anchors and aliases"),
        (b"a: &x 1\nb: *x\n", "anchors and aliases"),
        (b"a: &x [1]\nb:\n  <<: *x\n", "anchors and aliases"),
        (b"<<: {b: 2}\na: 1\n", "y.yaml"),
        (b"? [a]\n: 1\n", "y.yaml:1"),
        (b"a: !!python/object/apply:os.system ['true']\n", "y.yaml"),
        (b"a: !custom 1\n", "y.yaml"),
        (b"a: 1\n---\nb: 2\n", "y.yaml"),
        (b"a: [1\n", "y.yaml"),
        (b"a: 'x\n", "y.yaml"),
        (b"a:\n\t- 1\n", "y.yaml"),
        (b"a: \x00\n", "y.yaml"),
        (b"a: \x07\n", "y.yaml"),
        (b"a: \xff\n", "not UTF-8"),
        (b"\xed\xa0\x80: 1\n", "not UTF-8"),
    ],
    ids=[
        "duplicate key",
        "duplicate flow key",
        "nested duplicate",
        "anchor alone",
        "alias",
        "merge alias",
        "merge key",
        "unhashable key",
        "python tag",
        "unknown tag",
        "two documents",
        "unclosed flow",
        "unclosed quote",
        "tab",
        "NUL",
        "bell",
        "not UTF-8",
        "encoded surrogate",
    ],
)
def test_yaml_load_refuses_anything_doubtful(data: bytes, message: str) -> None:
    _refused(lambda: yamlio.load(data, where="y.yaml"), message)


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 10_000 + b"]" * 10_000,
        b"{a: " * 10_000 + b"1" + b"}" * 10_000,
        b"".join(b" " * i + b"- \n" for i in range(3000)),
        b"".join(b" " * i + b"a:\n" for i in range(3000)),
    ],
    ids=["flow list", "flow mapping", "block list", "block mapping"],
)
def test_yaml_load_of_deeply_nested_input_returns_or_raises_a_repro_error(data: bytes) -> None:
    try:
        value = yamlio.load(data, where="y.yaml")
    except ReproError as exc:
        assert "y.yaml" in str(exc)
    else:
        assert isinstance(value, list | dict)


def test_yaml_load_refuses_input_over_its_limit_before_parsing() -> None:
    assert yamlio.load(b"a: 1\n", where="y.yaml", limit=5) == {"a": 1}
    _refused(lambda: yamlio.load(b"a: 1\n\n", where="y.yaml", limit=5), "y.yaml", "larger")


def test_yaml_load_reads_plain_safe_yaml() -> None:
    assert yamlio.load(b"a: [1, x, true]\nb: {c: null}\n'&': '*'\n", where="y.yaml") == {
        "a": [1, "x", True],
        "b": {"c": None},
        "&": "*",
    }


@FUZZ
@given(data=st.binary(max_size=2048))
def test_loading_any_bytes_as_yaml_raises_only_repro_errors(data: bytes) -> None:
    _only_repro_errors(lambda: yamlio.load(data, where="y.yaml"))


@FUZZ
@given(text=st.text(max_size=1024))
def test_loading_any_text_as_yaml_raises_only_repro_errors(text: str) -> None:
    _only_repro_errors(lambda: yamlio.load(text.encode("utf-8", "surrogatepass"), where="y.yaml"))


@FUZZ
@given(
    text=st.lists(
        st.sampled_from(
            [
                "a",
                ":",
                " ",
                "\n",
                "- ",
                "[",
                "]",
                "{",
                "}",
                ",",
                "&x",
                "*x",
                "!!str",
                "? ",
                "<<",
                "'",
                '"',
                "#",
                "|",
                ">",
                "---",
                "\t",
                "1",
                "true",
                "~",
                "%YAML 1.1",
            ]
        ),
        max_size=40,
    ).map("".join)
)
def test_loading_yaml_made_of_syntax_tokens_raises_only_repro_errors(text: str) -> None:
    _only_repro_errors(lambda: yamlio.load(text.encode(), where="y.yaml"))
