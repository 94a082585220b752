"""Known answers for every on-disk format: a changed value here is a format break.

Users commit pointers and config to Git and share caches and remotes between machines and
versions of repro, so these bytes are a contract (DESIGN §3–4). The constants below were
computed once with the reference xxhash library and written down by hand; never regenerate
them from the code under test.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reprocli.core import gitignore, manifest, paths, pointer
from reprocli.core.hashing import ObjectId, hash_file, oid_of_bytes
from reprocli.core.manifest import Entry
from reprocli.core.objects import ObjectStore
from reprocli.core.paths import RepoPath
from reprocli.core.pointer import Pointer
from tests.builders import make_tree
from tests.conftest import Cli

# xxh3-128 known answers (32 lowercase hex digits).
OID_EMPTY = ObjectId("99aa06d3014798d86001c324468d497f")  # b""
OID_A = ObjectId("a96faf705af16834e6c632b61e964e1f")  # b"a"
OID_HELLO = ObjectId("6bba86c7e069f56d5a10b435f1c8e49c")  # b"hello\n"
BIG = bytes(range(256)) * 4097  # 1,048,832 bytes: larger than one read, so it is streamed
OID_BIG = ObjectId("3898db5d5b4a87468b544a01c6d30e1c")

# The manifest of data/{a.txt = "a", run.sh = "hello\n" (executable), sub/empty.txt = ""}.
TREE_MANIFEST = (
    b'[{"exec":false,"oid":"a96faf705af16834e6c632b61e964e1f","path":"a.txt","size":1},'
    b'{"exec":true,"oid":"6bba86c7e069f56d5a10b435f1c8e49c","path":"run.sh","size":6},'
    b'{"exec":false,"oid":"99aa06d3014798d86001c324468d497f","path":"sub/empty.txt","size":0}]'
)
TREE_OID = ObjectId("be7f831edbd276414816dbd09fce4c25.dir")
EMPTY_TREE_OID = "39347ff402b6c53d831154110e30ac6a.dir"

INIT_CONFIG = b"version: 1\ncore:\n  autostage: true\n"
INIT_CONFIG_NO_SCM = b"version: 1\ncore:\n  autostage: true\n  no_scm: true\n"
REPRO_GITIGNORE = b"/cache/\n/state/\n/tmp/\n/lock\n/config.local.yaml\n"


def _file_pointer_bytes(name: str, oid: str, size: int, *, exec_line: bool = False) -> bytes:
    text = f"version: 1\nouts:\n- path: {name}\n  hash: xxh3-128\n  oid: {oid}\n  size: {size}\n"
    if exec_line:
        text += "  exec: true\n"
    return text.encode("utf-8")


# --- object ids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", OID_EMPTY), (b"a", OID_A), (b"hello\n", OID_HELLO), (BIG, OID_BIG)],
    ids=["empty", "a", "hello", "streamed"],
)
def test_an_object_id_is_the_xxh3_128_hex_digest_of_the_content(
    content: bytes, expected: str, tmp_path: Path
) -> None:
    assert oid_of_bytes(content) == expected
    file = tmp_path / "blob"
    file.write_bytes(content)
    assert hash_file(file) == (expected, len(content))


# --- pointers -----------------------------------------------------------------------------


def test_a_file_pointer_has_these_exact_bytes() -> None:
    ptr = Pointer(RepoPath("models/model.pkl"), OID_HELLO, 6)
    expected = _file_pointer_bytes("model.pkl", OID_HELLO, 6)
    assert pointer.encode(ptr) == expected
    assert pointer.decode(expected, file=RepoPath("models/model.pkl.repro")) == ptr


def test_a_directory_pointer_records_nfiles_after_size() -> None:
    ptr = Pointer(RepoPath("data"), TREE_OID, 7, nfiles=3)
    expected = (
        b"version: 1\n"
        b"outs:\n"
        b"- path: data\n"
        b"  hash: xxh3-128\n"
        b"  oid: be7f831edbd276414816dbd09fce4c25.dir\n"
        b"  size: 7\n"
        b"  nfiles: 3\n"
    )
    assert pointer.encode(ptr) == expected
    assert pointer.decode(expected, file=RepoPath("data.repro")) == ptr


def test_an_executable_file_pointer_ends_with_exec_true() -> None:
    ptr = Pointer(RepoPath("bin/run.sh"), OID_HELLO, 6, exec=True)
    expected = _file_pointer_bytes("run.sh", OID_HELLO, 6, exec_line=True)
    assert pointer.encode(ptr) == expected
    assert pointer.decode(expected, file=RepoPath("bin/run.sh.repro")) == ptr


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("yes", '"yes"'),
        ("No", '"No"'),
        ("Off", '"Off"'),
        ("TRUE", '"TRUE"'),
        ("null", '"null"'),
        ("y", '"y"'),
        ("1st", '"1st"'),
        (".hidden", '".hidden"'),
        ("1.0", '"1.0"'),
        ("2024-01-01", '"2024-01-01"'),
        ("my data", '"my data"'),
        ("a:b", '"a:b"'),
        ("#x", '"#x"'),
        ("-x", '"-x"'),
        ("é.csv", '"é.csv"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("data_v1.2-final", "data_v1.2-final"),
        ("model.pkl", "model.pkl"),
        ("_x", "_x"),
    ],
)
def test_a_path_yaml_could_misread_is_written_as_a_double_quoted_string(
    name: str, written: str
) -> None:
    ptr = Pointer(RepoPath(name), OID_A, 1)
    data = pointer.encode(ptr)
    assert data == _file_pointer_bytes(written, OID_A, 1)
    assert pointer.decode(data, file=RepoPath(name + ".repro")) == ptr
    # Any YAML reader, not only repro's, must read the name back as the same string.
    assert yaml.safe_load(data)["outs"][0]["path"] == name


@settings(max_examples=300, deadline=None, database=None)
@given(name=st.text(min_size=1, max_size=40))
@example(name="a\x85b")  # NEL: a line break to YAML 1.1
@example(name="c\x80d")  # a C1 control character: not printable in YAML
@example(name="u\u2028v")  # LINE SEPARATOR
@example(name="tag\U000e0001")  # not printable, beyond U+FFFF
@example(name="private\U000f0000")  # a private-use character beyond U+FFFF
def test_a_pointer_round_trips_every_file_name_that_paths_accept(name: str) -> None:
    if "/" in name or paths.problem(name) is not None:
        return
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return  # lone surrogates: not text, handled (or refused) before a Pointer is made
    ptr = Pointer(RepoPath(name), OID_A, 1)
    assert pointer.decode(pointer.encode(ptr), file=RepoPath(name + ".repro")) == ptr


# --- manifests ----------------------------------------------------------------------------


def _tree_entries() -> list[Entry]:
    return [
        Entry(RepoPath("a.txt"), OID_A, 1, False),
        Entry(RepoPath("run.sh"), OID_HELLO, 6, True),
        Entry(RepoPath("sub/empty.txt"), OID_EMPTY, 0, False),
    ]


def test_a_manifest_is_compact_sorted_json_with_these_exact_bytes() -> None:
    entries = _tree_entries()
    assert manifest.encode(entries) == TREE_MANIFEST
    assert oid_of_bytes(TREE_MANIFEST) + ".dir" == TREE_OID
    assert manifest.decode(TREE_MANIFEST, where="m") == entries


def test_a_manifest_writes_non_ascii_paths_as_raw_utf8_and_escapes_quotes() -> None:
    entries = [
        Entry(RepoPath('say "hi".txt'), OID_A, 1, False),
        Entry(RepoPath("é.txt"), OID_A, 1, False),
    ]
    expected = (
        b'[{"exec":false,"oid":"a96faf705af16834e6c632b61e964e1f","path":"say \\"hi\\".txt","size":1},'
        b'{"exec":false,"oid":"a96faf705af16834e6c632b61e964e1f","path":"\xc3\xa9.txt","size":1}]'
    )
    assert manifest.encode(entries) == expected
    assert manifest.decode(expected, where="m") == entries


def test_an_empty_directory_has_the_manifest_of_an_empty_list() -> None:
    assert manifest.encode([]) == b"[]"
    assert oid_of_bytes(b"[]") + ".dir" == EMPTY_TREE_OID
    assert manifest.decode(b"[]", where="m") == []


def test_repro_add_of_a_tree_writes_the_known_manifest_pointer_objects_and_gitignore(
    git_repo: Path, cli: Cli
) -> None:
    cli("init")
    make_tree(git_repo, {"data/a.txt": "a", "data/run.sh": "hello\n", "data/sub/empty.txt": ""})
    (git_repo / "data/empty").mkdir()  # empty folders are not recorded
    os.chmod(git_repo / "data/run.sh", 0o755)
    os.chmod(git_repo / "data/a.txt", 0o644)
    os.chmod(git_repo / "data/sub/empty.txt", 0o644)

    cli("add", "data")

    assert (git_repo / "data.repro").read_bytes() == (
        b"version: 1\n"
        b"outs:\n"
        b"- path: data\n"
        b"  hash: xxh3-128\n"
        b"  oid: be7f831edbd276414816dbd09fce4c25.dir\n"
        b"  size: 7\n"
        b"  nfiles: 3\n"
    )
    objects = git_repo / ".repro/cache/objects"
    expected_objects = {
        "be/7f831edbd276414816dbd09fce4c25.dir": TREE_MANIFEST,
        "a9/6faf705af16834e6c632b61e964e1f": b"a",
        "6b/ba86c7e069f56d5a10b435f1c8e49c": b"hello\n",
        "99/aa06d3014798d86001c324468d497f": b"",
    }
    found = {
        p.relative_to(objects).as_posix(): p.read_bytes() for p in objects.rglob("*") if p.is_file()
    }
    assert found == expected_objects
    for rel in expected_objects:
        assert stat.S_IMODE(os.stat(objects / rel).st_mode) == _read_only_mode(), rel
    assert (
        git_repo / ".gitignore"
    ).read_bytes() == b".repro-tmp-*\n/data\n"  # init writes the temp pattern first


def test_repro_add_of_files_writes_the_known_pointers_and_folder_gitignores(
    git_repo: Path, cli: Cli
) -> None:
    cli("init")
    make_tree(git_repo, {"models/model.pkl": "hello\n", "run.sh": "a"})
    os.chmod(git_repo / "models/model.pkl", 0o644)
    os.chmod(git_repo / "run.sh", 0o755)

    cli("add", "models/model.pkl", "run.sh")

    assert (git_repo / "models/model.pkl.repro").read_bytes() == _file_pointer_bytes(
        "model.pkl", OID_HELLO, 6
    )
    assert (git_repo / "run.sh.repro").read_bytes() == _file_pointer_bytes(
        "run.sh", OID_A, 1, exec_line=True
    )
    assert (git_repo / "models/.gitignore").read_bytes() == b"/model.pkl\n"
    assert (git_repo / ".gitignore").read_bytes() == b".repro-tmp-*\n/run.sh\n"


def _read_only_mode() -> int:
    """0444 less the umask: what object files are created with."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o444 & ~mask


# --- cache layout -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("oid", "rel"),
    [
        (OID_HELLO, "objects/6b/ba86c7e069f56d5a10b435f1c8e49c"),
        (TREE_OID, "objects/be/7f831edbd276414816dbd09fce4c25.dir"),
    ],
)
def test_an_object_lives_under_its_first_two_hex_digits(oid: str, rel: str, tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "cache")
    assert store.path_of(ObjectId(oid)) == tmp_path / "cache" / rel


def test_put_bytes_stores_an_object_read_only_at_its_layout_path(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "cache")
    assert store.put_bytes(b"hello\n") == OID_HELLO
    assert store.put_bytes(TREE_MANIFEST, suffix=".dir") == TREE_OID
    hello = tmp_path / "cache/objects/6b/ba86c7e069f56d5a10b435f1c8e49c"
    tree = tmp_path / "cache/objects/be/7f831edbd276414816dbd09fce4c25.dir"
    assert hello.read_bytes() == b"hello\n"
    assert tree.read_bytes() == TREE_MANIFEST
    assert stat.S_IMODE(os.stat(hello).st_mode) == _read_only_mode()
    assert store.read_bytes(TREE_OID) == TREE_MANIFEST


# --- .gitignore lines --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("data", "/data"),
        ("model.pkl", "/model.pkl"),
        ("we[i]rd#!*?", "/we\\[i\\]rd\\#\\!\\*\\?"),
        ("back\\slash", "/back\\\\slash"),
        ("trail ", "/trail\\ "),
        ("my data", "/my data"),
        ("é.bin", "/é.bin"),
    ],
)
def test_a_gitignore_line_anchors_and_escapes_the_name(name: str, line: str) -> None:
    assert gitignore.entry_for(name) == line


def test_ensure_ignored_appends_one_line_and_a_missing_final_newline(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_bytes(b"*.log")
    assert gitignore.ensure_ignored(tmp_path, "data", tmp_dir=tmp_path)
    assert not gitignore.ensure_ignored(tmp_path, "data", tmp_dir=tmp_path)
    assert (tmp_path / ".gitignore").read_bytes() == b"*.log\n/data\n"


# --- repro init ---------------------------------------------------------------------------


def test_repro_init_writes_the_known_config_and_gitignore(git_repo: Path, cli: Cli) -> None:
    cli("init")
    assert (git_repo / ".repro/config.yaml").read_bytes() == INIT_CONFIG
    assert (git_repo / ".repro/.gitignore").read_bytes() == REPRO_GITIGNORE


def test_repro_init_no_scm_records_no_scm_in_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    cli("init", "--no-scm")
    assert (plain / ".repro/config.yaml").read_bytes() == INIT_CONFIG_NO_SCM
    assert (plain / ".repro/.gitignore").read_bytes() == REPRO_GITIGNORE


def test_the_config_reader_reads_what_repro_init_writes(tmp_path: Path) -> None:
    from reprocli.core import config

    file = tmp_path / "config.yaml"
    file.write_bytes(INIT_CONFIG)
    assert config.read_level(file, "repo") == {"version": 1, "core": {"autostage": True}}
    file.write_bytes(INIT_CONFIG_NO_SCM)
    assert config.read_level(file, "repo") == {
        "version": 1,
        "core": {"autostage": True, "no_scm": True},
    }
