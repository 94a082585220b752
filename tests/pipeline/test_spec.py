"""repro.yaml and repro.lock: what parses, and how every defect is refused.

A defect in repro.yaml is a usage error (exit 2) reported on one `error:` line that names
`repro.yaml:LINE` — the line of the offending key or list entry — together with the stage and
the field, whichever pipeline command met it (`run`, `dag`, `status`), and nothing is written.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reprocli.core.paths import RepoPath
from reprocli.errors import ReproError
from reprocli.pipeline import lockfile, spec
from reprocli.pipeline.spec import Out, ParamRef
from tests.builders import git, make_tree
from tests.conftest import Cli
from tests.pipeline.conftest import PY, Chain, read_lock, stage_script, workspace_files

MARK = "# <-"
"""Marks the line an error must name, in the repro.yaml texts below."""

COMMANDS = (("run",), ("dag",), ("status",))

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _parse(text: str) -> spec.Pipeline:
    return spec.parse(textwrap.dedent(text).encode())


def _marked_lines(text: str) -> list[int]:
    return [n for n, line in enumerate(text.splitlines(), 1) if MARK in line]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# --- what parses ----------------------------------------------------------------------------


def test_a_command_list_is_kept_in_order_and_recorded_as_lines() -> None:
    pipeline = _parse(
        """\
        stages:
          build:
            cmd:
            - echo one
            - echo two
            outs: [out.txt]
        """
    )
    stage = pipeline.stages["build"]
    assert stage.cmd == ("echo one", "echo two")
    assert stage.command_text == "echo one\necho two"


def test_params_are_keys_of_params_yaml_or_keys_of_a_named_file() -> None:
    pipeline = _parse(
        """\
        stages:
          train:
            cmd: python train.py
            params:
            - train.lr
            - seed
            - conf/model.toml: [depth, opt.momentum]
            - conf/extra.json: [batch]
        """
    )
    assert pipeline.stages["train"].params == (
        ParamRef(RepoPath("params.yaml"), "train.lr"),
        ParamRef(RepoPath("params.yaml"), "seed"),
        ParamRef(RepoPath("conf/model.toml"), "depth"),
        ParamRef(RepoPath("conf/model.toml"), "opt.momentum"),
        ParamRef(RepoPath("conf/extra.json"), "batch"),
    )


def test_paths_of_a_stage_with_a_wdir_are_resolved_to_repository_paths() -> None:
    pipeline = _parse(
        """\
        stages:
          train:
            cmd: python train.py
            wdir: models/src
            deps: [../../data/raw.csv, ./train.py]
            outs: [../model.pkl, out/]
            metrics: [scores.json]
          root:
            cmd: echo
            wdir: .
            deps: [data/raw.csv]
        """
    )
    train = pipeline.stages["train"]
    assert train.wdir == "models/src"
    assert train.deps == ("data/raw.csv", "models/src/train.py")
    assert [o.path for o in train.outs] == [
        "models/model.pkl",
        "models/src/out",
        "models/src/scores.json",
    ]
    assert not pipeline.stages["root"].wdir
    assert pipeline.stages["root"].deps == ("data/raw.csv",)


def test_outputs_are_cached_unless_cache_false_and_metrics_are_uncached_by_default() -> None:
    pipeline = _parse(
        """\
        stages:
          train:
            cmd: python train.py
            outs:
            - model.pkl
            - log.txt:
                cache: false
            metrics:
            - metrics.json
            - big-metrics.json: {cache: true}
        """
    )
    assert pipeline.stages["train"].outs == (
        Out(RepoPath("model.pkl"), cache=True, metric=False),
        Out(RepoPath("log.txt"), cache=False, metric=False),
        Out(RepoPath("metrics.json"), cache=False, metric=True),
        Out(RepoPath("big-metrics.json"), cache=True, metric=True),
    )
    assert [o.path for o in pipeline.stages["train"].cached_outs] == [
        "model.pkl",
        "big-metrics.json",
    ]


def test_stages_keep_their_declared_order_and_an_empty_file_declares_none() -> None:
    pipeline = _parse("stages:\n  zeta: {cmd: a}\n  alpha: {cmd: b}\n  mid: {cmd: c}\n")
    assert list(pipeline.stages) == ["zeta", "alpha", "mid"]
    assert _parse("").stages == {}
    assert _parse("stages: {}\n").stages == {}


def test_a_stage_with_a_wdir_runs_there_and_records_repository_paths(repo: Path, cli: Cli) -> None:
    make_tree(repo, {"sub/in.txt": "hello\n"})
    (repo / "repro.yaml").write_text(
        "stages:\n"
        "  copy:\n"
        "    wdir: sub\n"
        f"    cmd: {PY} -c \"open('out.txt', 'w').write(open('in.txt').read().upper())\"\n"
        "    deps: [in.txt]\n"
        "    outs: [out.txt]\n"
    )
    cli("run")
    assert (repo / "sub/out.txt").read_text() == "HELLO\n"
    assert not (repo / "out.txt").exists()
    entry = read_lock(repo)["copy"]
    assert [d.path for d in entry.deps] == ["sub/in.txt"]
    assert [o.path for o in entry.outs] == ["sub/out.txt"]


def test_params_from_toml_and_json_files_are_tracked_by_value(
    repo: Path, cli: Cli, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    make_tree(
        repo,
        {
            "conf/model.toml": "[model]\ndepth = 3\nname = 'tree'\n",
            "conf/run.json": '{"batch": 16, "opt": {"lr": 0.5}}\n',
            "train.py": stage_script("train", log, "open('model.txt', 'w').write('m')\n"),
            "repro.yaml": (
                "stages:\n"
                "  train:\n"
                f"    cmd: {PY} train.py\n"
                "    deps: [train.py]\n"
                "    params:\n"
                "    - conf/model.toml: [model.depth]\n"
                "    - conf/run.json: [batch, opt.lr]\n"
                "    outs: [model.txt]\n"
            ),
        },
    )
    cli("run")
    entry = read_lock(repo)["train"]
    assert entry.params == {
        "conf/model.toml": {"model.depth": 3},
        "conf/run.json": {"batch": 16, "opt.lr": 0.5},
    }
    # A parameter nobody declared may change freely.
    (repo / "conf/model.toml").write_text("[model]\ndepth = 3\nname = 'forest'\n")
    cli("status", "--check")
    (repo / "conf/model.toml").write_text("[model]\ndepth = 4\nname = 'forest'\n")
    (repo / "conf/run.json").write_text('{"batch": 16, "opt": {"lr": 0.25}}\n')
    out = cli("status", "--check", expect=1).stdout
    assert "param model.depth: 3 → 4" in out
    assert "param opt.lr: 0.5 → 0.25" in out
    cli("run")
    assert log.read_text().split() == ["train", "train"]


# --- repro.yaml defects: exit 2, one error line naming repro.yaml:LINE, the stage and field ---


@dataclass(frozen=True)
class Defect:
    """A repro.yaml with one defect; the error must name a line marked `# <-` (the entry or
    the key at fault; where an entry spans lines, either of them)."""

    text: str
    stage: str | None
    words: tuple[str, ...]
    """The field (and any other names) the error line must contain."""
    files: tuple[str, ...] = ()
    """Files to create first (deps that exist)."""


DEFECTS: dict[str, Defect] = {
    "an unknown top-level key": Defect(
        """\
        stages:
          a:
            cmd: echo a
        stage:  # <-
          b:
            cmd: echo b
        """,
        None,
        ("stage",),
    ),
    "an unknown stage field": Defect(
        """\
        stages:
          train:
            cmd: echo train
            dep: [in.txt]  # <-
        """,
        "train",
        ("dep",),
    ),
    "an unknown output option": Defect(
        """\
        stages:
          train:
            cmd: echo train
            outs:
            - model.pkl
            - log.txt: {cachee: false}  # <-
        """,
        "train",
        ("outs", "cachee"),
    ),
    "a cmd that is a number": Defect(
        """\
        stages:
          train:
            outs: [model.pkl]
            cmd: 42  # <-
        """,
        "train",
        ("cmd",),
    ),
    "a missing cmd": Defect(
        """\
        stages:
          other:
            cmd: echo
          train:  # <-
            outs: [model.pkl]
        """,
        "train",
        ("cmd",),
    ),
    "an empty cmd list": Defect(
        """\
        stages:
          train:
            outs: [model.pkl]
            cmd: []  # <-
        """,
        "train",
        ("cmd",),
    ),
    "deps that are a string, not a list": Defect(
        """\
        stages:
          train:
            cmd: echo
            deps: in.txt  # <-
        """,
        "train",
        ("deps",),
        ("in.txt",),
    ),
    "a dep that is a mapping": Defect(
        """\
        stages:
          train:
            cmd: echo
            deps:
            - in.txt
            - {path: other.txt}  # <-
        """,
        "train",
        ("deps",),
        ("in.txt",),
    ),
    "params that are a mapping": Defect(
        """\
        stages:
          train:
            cmd: echo
            params: {train: lr}  # <-
        """,
        "train",
        ("params",),
    ),
    "a params file entry without a key list": Defect(
        """\
        stages:
          train:
            cmd: echo
            params:
            - seed
            - conf.yaml: lr  # <-
        """,
        "train",
        ("params",),
    ),
    "a cache option that is a string": Defect(
        """\
        stages:
          train:
            cmd: echo
            outs:
            - model.pkl:  # <-
                cache: "no"  # <-
        """,
        "train",
        ("outs", "cache"),
    ),
    "outs that are a mapping": Defect(
        """\
        stages:
          train:
            cmd: echo
            outs: {model.pkl: true, b: 1}  # <-
        """,
        "train",
        ("outs",),
    ),
    "metrics that are a number": Defect(
        """\
        stages:
          train:
            cmd: echo
            metrics: 3  # <-
        """,
        "train",
        ("metrics",),
    ),
    "a wdir that is a list": Defect(
        """\
        stages:
          train:
            cmd: echo
            wdir: [src]  # <-
        """,
        "train",
        ("wdir",),
    ),
    "a stage that is a string": Defect(
        """\
        stages:
          ok:
            cmd: echo
          train: python train.py  # <-
        """,
        "train",
        (),
    ),
    "a dep leaving the repository": Defect(
        """\
        stages:
          train:
            cmd: echo
            deps:
            - in.txt
            - ../outside.csv  # <-
        """,
        "train",
        ("deps", "../outside.csv"),
        ("in.txt",),
    ),
    "an absolute output": Defect(
        """\
        stages:
          train:
            cmd: echo
            outs:
            - /tmp/model.pkl  # <-
        """,
        "train",
        ("outs", "/tmp/model.pkl"),
    ),
    "an output leaving the repository through its wdir": Defect(
        """\
        stages:
          train:
            cmd: echo
            wdir: src
            outs:
            - ok.txt
            - ../../model.pkl  # <-
        """,
        "train",
        ("outs", "../../model.pkl"),
    ),
    "a metrics file leaving the repository": Defect(
        """\
        stages:
          train:
            cmd: echo
            metrics:
            - sub/../../m.json  # <-
        """,
        "train",
        ("metrics",),
    ),
    "a wdir above the repository": Defect(
        """\
        stages:
          train:
            cmd: echo
            wdir: ..  # <-
        """,
        "train",
        ("wdir",),
    ),
    "a params file leaving the repository": Defect(
        """\
        stages:
          train:
            cmd: echo
            params:
            - ../params.yaml: [lr]  # <-
        """,
        "train",
        ("params", "../params.yaml"),
    ),
    "an output inside .git": Defect(
        """\
        stages:
          train:
            cmd: echo
            outs:
            - .git/hooks/pre-commit  # <-
        """,
        "train",
        ("outs", ".git"),
    ),
    "an output inside .repro": Defect(
        """\
        stages:
          train:
            cmd: echo
            outs:
            - .repro/config  # <-
        """,
        "train",
        ("outs", ".repro"),
    ),
    "two stages claiming one output": Defect(
        """\
        stages:
          first:
            cmd: echo
            outs:
            - model.pkl
          second:
            cmd: echo
            outs:
            - other.pkl
            - model.pkl  # <-
        """,
        "second",
        ("outs", "model.pkl", "first"),
    ),
    "an output inside another stage's directory output": Defect(
        """\
        stages:
          first:
            cmd: echo
            outs:
            - data
          second:
            cmd: echo
            outs:
            - data/extra.csv  # <-
        """,
        "second",
        ("outs", "data/extra.csv", "first"),
    ),
    "a directory output around another stage's output": Defect(
        """\
        stages:
          first:
            cmd: echo
            metrics:
            - data/metrics.json
          second:
            cmd: echo
            outs:
            - data  # <-
        """,
        "second",
        ("outs", "data/metrics.json", "first"),
    ),
    "a dep that neither exists nor is produced": Defect(
        """\
        stages:
          train:
            cmd: echo
            deps:
            - in.txt
            - data/missing.csv  # <-
            outs:
            - model.pkl
        """,
        "train",
        ("deps", "data/missing.csv"),
        ("in.txt",),
    ),
    "a stage depending on its own output": Defect(
        """\
        stages:
          train:
            cmd: echo
            deps:
            - model.pkl  # <-
            outs:
            - model.pkl
        """,
        "train",
        ("deps", "model.pkl"),
    ),
}


def _check_refused(repo: Path, cli: Cli, text: str, command: tuple[str, ...]) -> str:
    """Run `command` on repro.yaml `text`: exit 2, one error line, nothing written."""
    (repo / "repro.yaml").write_text(text)
    git(repo, "add", "-A")
    before_index = git(repo, "status", "--porcelain")
    before_files = workspace_files(repo)
    result = cli(*command, expect=2)
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert not (repo / "repro.lock").exists()
    assert workspace_files(repo) == before_files
    assert git(repo, "status", "--porcelain") == before_index
    return errors[0]


@pytest.mark.parametrize("defect", DEFECTS.values(), ids=list(DEFECTS))
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_defective_repro_yaml_is_refused_naming_its_line_stage_and_field(
    repo: Path, cli: Cli, defect: Defect, command: tuple[str, ...]
) -> None:
    text = textwrap.dedent(defect.text)
    make_tree(repo, {f: "x\n" for f in defect.files})
    lines = _marked_lines(text)
    error = _check_refused(repo, cli, text, command)
    assert any(f"repro.yaml:{n}:" in error for n in lines), f"expected line {lines}: {error}"
    if defect.stage is not None:
        assert re.search(rf"\b{re.escape(defect.stage)}\b", error), error
    for word in defect.words:
        assert word in error, f"{word!r} missing from: {error}"


CYCLE = """\
stages:
  alpha:
    cmd: echo alpha
    deps:
    - c.txt  # <-
    outs:
    - a.txt
  beta:
    cmd: echo beta
    deps:
    - a.txt  # <-
    outs:
    - b.txt
  gamma:
    cmd: echo gamma
    deps:
    - b.txt  # <-
    outs:
    - c.txt
  outside:
    cmd: echo outside
    deps:
    - c.txt
    outs:
    - d.txt
"""


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_cycle_is_refused_naming_every_stage_in_it(
    repo: Path, cli: Cli, command: tuple[str, ...]
) -> None:
    error = _check_refused(repo, cli, CYCLE, command)
    assert any(f"repro.yaml:{line}:" in error for line in _marked_lines(CYCLE)), (
        f"expected the line of a dependency closing the cycle {_marked_lines(CYCLE)}: {error}"
    )
    assert "cycle" in error
    assert "deps" in error, error
    for name in ("alpha", "beta", "gamma"):
        assert name in error, error
    assert "outside" not in error


SYNTAX = {
    "a value that is not allowed": ("stages:\n  a:\n    cmd: echo: x: y\n", 3),
    "a tab for indentation": ("stages:\n  a:\n\tcmd: echo\n", 3),
    "a duplicate key": ("stages:\n  a:\n    cmd: echo\n    outs: [x]\n    cmd: echo 2\n", 5),
    "an unclosed flow list": ("stages:\n  a:\n    cmd: echo\n    deps: [x, y\n    outs: [z]\n", 5),
    "an anchor and alias": ("stages:\n  a: &s\n    cmd: echo\n  b: *s\n", 2),
}


@pytest.mark.parametrize("case", SYNTAX.values(), ids=list(SYNTAX))
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_invalid_yaml_syntax_is_refused_naming_the_line(
    repo: Path, cli: Cli, case: tuple[str, int], command: tuple[str, ...]
) -> None:
    text, line = case
    error = _check_refused(repo, cli, text, command)
    assert f"repro.yaml:{line}:" in error, error


def test_a_stage_name_that_is_not_an_identifier_is_refused_naming_its_line(
    repo: Path, cli: Cli
) -> None:
    text = "stages:\n  ok:\n    cmd: echo\n  bad name:\n    cmd: echo\n"
    error = _check_refused(repo, cli, text, ("run",))
    assert "repro.yaml:4:" in error and "bad name" in error


def test_an_unknown_target_stage_is_refused_with_the_known_stages(repo: Path, cli: Cli) -> None:
    (repo / "repro.yaml").write_text("stages:\n  one:\n    cmd: echo\n  two:\n    cmd: echo\n")
    result = cli("run", "three", expect=2)
    (error,) = _error_lines(result.stderr)
    assert "three" in error and "one" in error and "two" in error
    assert not (repo / "repro.lock").exists()


# --- repro.lock defects ---------------------------------------------------------------------

GOOD_OID = "6bba86c7e069f56d5a10b435f1c8e49c"


def _lock_text(path: str = "out.txt", oid: str = GOOD_OID, version: str = "1") -> str:
    return (
        f"version: {version}\n"
        "hash: xxh3-128\n"
        "stages:\n"
        "  make:\n"
        "    cmd: echo\n"
        "    outs:\n"
        f"    - path: {path}\n"
        f"      oid: {oid}\n"
        "      size: 3\n"
    )


BAD_LOCKS = {
    "invalid YAML": "version: 1\nstages: [\n",
    "a newer version": _lock_text(version="2"),
    "a bad oid": _lock_text(oid="not-an-oid"),
    "an output path leaving the repository": _lock_text(path="../x"),
    "an absolute output path": _lock_text(path="/etc/passwd"),
    "an output inside .repro": _lock_text(path=".repro/config"),
    "a list instead of a mapping": "- a\n- b\n",
}


@pytest.mark.parametrize("text", BAD_LOCKS.values(), ids=list(BAD_LOCKS))
@pytest.mark.parametrize("command", [("run",), ("status",), ("run", "--dry")], ids=" ".join)
def test_a_malformed_repro_lock_is_refused_naming_repro_lock(
    repo: Path, cli: Cli, tmp_path: Path, text: str, command: tuple[str, ...]
) -> None:
    log = tmp_path / "log"
    make_tree(
        repo,
        {
            "make.py": stage_script("make", log, "open('out.txt', 'w').write('new')\n"),
            "repro.yaml": f"stages:\n  make:\n    cmd: {PY} make.py\n    outs: [out.txt]\n",
            "repro.lock": text,
        },
    )
    result = cli(*command, expect=2)
    (error,) = _error_lines(result.stderr)
    assert "repro.lock" in error
    assert (repo / "repro.lock").read_text() == text
    assert not log.exists(), "no stage may run against a malformed repro.lock"
    assert not (repo / "out.txt").exists()


def test_a_params_key_missing_from_params_yaml_is_refused_naming_file_and_key(
    chain: Chain, cli: Cli
) -> None:
    chain.set_param("  lr: 0.1\n", "  rate: 0.1\n")
    for command in (("run",), ("status",), ("run", "--dry")):
        result = cli(*command, expect=2)
        (error,) = _error_lines(result.stderr)
        assert "params.yaml" in error and "train.lr" in error, error
    assert chain.runs() == []
    assert not (chain.root / "repro.lock").exists()


def test_a_missing_params_file_is_refused_naming_it(repo: Path, cli: Cli) -> None:
    (repo / "repro.yaml").write_text(
        "stages:\n  train:\n    cmd: echo\n    params:\n    - conf/run.json: [batch]\n"
    )
    result = cli("run", expect=2)
    (error,) = _error_lines(result.stderr)
    assert "conf/run.json" in error
    assert not (repo / "repro.lock").exists()


def test_a_malformed_params_file_is_refused_naming_it(repo: Path, cli: Cli) -> None:
    make_tree(repo, {"conf/run.toml": "batch = = 3\n"})
    (repo / "repro.yaml").write_text(
        "stages:\n  train:\n    cmd: echo\n    params:\n    - conf/run.toml: [batch]\n"
    )
    result = cli("status", expect=2)
    (error,) = _error_lines(result.stderr)
    assert "conf/run.toml" in error


# --- fuzzing: only ReproError subclasses ever escape ----------------------------------------

_KEYS = st.sampled_from(
    [
        "stages", "version", "hash", "cmd", "deps", "params", "outs", "metrics", "wdir",
        "desc", "cache", "path", "oid", "size", "nfiles", "a", "b", "train", "x/y", "../x",
        ".repro/x", "", "params.yaml", "c.json", "d.toml",
    ]
)  # fmt: skip
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | _KEYS
    | st.sampled_from([GOOD_OID, GOOD_OID + ".dir", "xxh3-128", "/abs", "a/../../b", "."])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(_KEYS | st.integers(0, 3) | st.booleans(), inner, max_size=4)
    ),
    max_leaves=25,
)


def _yaml_bytes(value: object) -> bytes:
    return yaml.safe_dump(value, allow_unicode=True).encode()


_PATHS = st.sampled_from(
    ["a", "a/b", "data", "data/x.csv", "../x", "/abs", ".", "", "x/../y", "x/../../y", ".git/x",
     ".repro/y", "a\x00b", "\u00fc/\u00df", "a//b", "a/", "C:\\x", "~", "*.csv"]
) | st.text(max_size=8)  # fmt: skip
_PLAUSIBLE_STAGE = st.fixed_dictionaries(
    {"cmd": st.sampled_from(["echo", "python a.py"]) | st.lists(st.sampled_from(["a", "b"]))},
    optional={
        "deps": st.lists(_PATHS, max_size=3),
        "outs": st.lists(
            _PATHS
            | st.dictionaries(
                _PATHS, st.fixed_dictionaries({}, optional={"cache": _SCALARS}), max_size=1
            ),
            max_size=3,
        ),
        "metrics": st.lists(_PATHS, max_size=2),
        "params": st.lists(
            _PATHS | st.dictionaries(_PATHS, st.lists(_PATHS, max_size=2), max_size=1), max_size=3
        ),
        "wdir": _PATHS,
    },
)


_SPEC_DOCS = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=200).map(str.encode),
    _VALUES.map(_yaml_bytes),
    st.dictionaries(
        st.text(max_size=6) | _KEYS,
        st.dictionaries(st.sampled_from([*sorted(spec.STAGE_KEYS), "bogus"]), _VALUES, max_size=6),
        max_size=3,
    ).map(lambda stages: _yaml_bytes({"stages": stages})),
    st.dictionaries(st.sampled_from(["a", "b", "c", "a b"]), _PLAUSIBLE_STAGE, max_size=3).map(
        lambda stages: _yaml_bytes({"stages": stages})
    ),
)
_ARTIFACT = (
    st.fixed_dictionaries(
        {},
        optional={
            "path": _SCALARS | _PATHS,
            "oid": _SCALARS,
            "size": _SCALARS,
            "nfiles": _SCALARS,
            "cache": _SCALARS,
        },
    )
    | st.fixed_dictionaries(
        {"path": _PATHS, "oid": st.just(GOOD_OID), "size": st.integers(-1, 9)},
        optional={"cache": st.booleans() | _SCALARS},
    )
    | st.fixed_dictionaries(
        {"path": _PATHS, "oid": st.just(GOOD_OID + ".dir"), "size": st.integers(0, 9)},
        optional={"nfiles": st.integers(-1, 3) | _SCALARS},
    )
)
_LOCK_DOCS = st.one_of(
    st.binary(max_size=400),
    _VALUES.map(_yaml_bytes),
    st.dictionaries(
        st.text(max_size=6) | _KEYS,
        st.fixed_dictionaries(
            {"cmd": _SCALARS},
            optional={
                "deps": st.lists(_ARTIFACT, max_size=3) | _VALUES,
                "outs": st.lists(_ARTIFACT, max_size=3) | _VALUES,
                "params": _VALUES,
            },
        ),
        max_size=3,
    ).map(lambda stages: _yaml_bytes({"version": 1, "hash": "xxh3-128", "stages": stages})),
)


@FUZZ
@given(data=_SPEC_DOCS)
def test_parsing_arbitrary_bytes_as_repro_yaml_raises_only_repro_errors(data: bytes) -> None:
    try:
        pipeline = spec.parse(data)
    except ReproError:
        return
    for stage in pipeline.stages.values():
        for path in (*stage.deps, *(o.path for o in stage.outs)):
            assert not path.startswith(("/", "../", ".repro/", ".git/")) and path not in (
                "",
                "..",
            ), path


@FUZZ
@given(data=_LOCK_DOCS)
def test_decoding_arbitrary_bytes_as_repro_lock_raises_only_repro_errors(data: bytes) -> None:
    try:
        entries = lockfile.decode(data)
    except ReproError as exc:
        assert "repro.lock" in str(exc), str(exc)
        return
    for entry in entries.values():
        for artifact in (*entry.deps, *entry.outs):
            assert not artifact.path.startswith(("/", "../", ".repro/")), artifact.path
