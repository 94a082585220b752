"""`repro params diff`, `repro metrics show` and `repro metrics diff` (DESIGN §2).

Two tagged experiments (v1, v2 on main) of a stage that declares a whole params section, a
TOML key and a JSON key, and two metrics files (JSON and YAML, with nested keys). Values
are binary fractions, so every change is exact. Files are read at each revision straight
from Git: nothing here runs a stage.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.builders import commit, git, make_tree
from tests.conftest import Cli

PY = shlex.quote(sys.executable)

PIPELINE = """\
stages:
  train:
    cmd: python train.py
    params:
    - train
    - cfg.toml: [opt.beta]
    - hp.json: [seed]
    metrics:
    - metrics.json
    - eval/scores.yaml
"""

V1_METRICS = {
    "acc": 0.5,
    "loss": {"train": 1.5, "test": 2.0},
    "converged": False,
    "n": 10,
    "note": "baseline",
}
V2_METRICS = {
    "acc": 0.75,
    "loss": {"train": 1.25, "test": 2.0},
    "converged": True,
    "n": 12,
    "note": "tuned",
}


def params_yaml(lr: float, other: int) -> str:
    """params.yaml: the `train` section the stage declares, and `other`, which it does not."""
    return f"train:\n  lr: {lr}\n  epochs: 3\n  nested:\n    depth: 2\nother: {other}\n"


def experiment(root: Path, *, lr: float, other: int, seed: int, metrics: dict[str, Any]) -> None:
    """Write one experiment's parameters and metrics into the workspace."""
    auc = 0.75 if metrics["acc"] == 0.5 else 0.875
    make_tree(
        root,
        {
            "params.yaml": params_yaml(lr, other),
            "cfg.toml": f"[opt]\nbeta = 0.25\ngamma = {other}\n",
            "hp.json": json.dumps({"seed": seed, "unused": other}),
            "metrics.json": json.dumps(metrics),
            "eval/scores.yaml": f"auc: {auc}\nper_class:\n  cat: 0.5\n",
        },
    )


@pytest.fixture
def experiments(repo: Path) -> Path:
    """v1 and v2 committed and tagged; main at v2; the workspace clean."""
    make_tree(repo, {"repro.yaml": PIPELINE})
    experiment(repo, lr=0.5, other=7, seed=1, metrics=V1_METRICS)
    git(repo, "add", "-A")
    commit(repo, "v1")
    git(repo, "tag", "v1")
    experiment(repo, lr=0.75, other=8, seed=2, metrics=V2_METRICS)
    commit(repo, "v2")
    git(repo, "tag", "v2")
    return repo


def changes(cli: Cli, *args: str) -> list[dict[str, Any]]:
    """The `changes` of a `--json` diff (and check its envelope)."""
    doc = json.loads(cli(*args, "--json").stdout)
    assert doc["version"] == 1
    return list(doc["changes"])


def rows(text: str) -> list[list[str]]:
    """A plain table as lists of cells (cells hold no spaces in these tests)."""
    return [line.split() for line in text.splitlines() if line.strip()]


# --- params diff ----------------------------------------------------------------------------


def test_params_diff_compares_head_with_the_workspace_by_default(
    experiments: Path, cli: Cli
) -> None:
    assert "no param changes between HEAD and workspace" in cli("params", "diff").stderr
    (experiments / "params.yaml").write_text(params_yaml(1.5, other=99))

    result = cli("params", "diff")
    assert rows(result.stdout) == [
        ["Path", "Param", "HEAD", "workspace", "Change"],
        ["params.yaml", "train.lr", "0.75", "1.5", "+0.75"],
    ]  # `other` changed too, but no stage declares it


def test_params_diff_between_two_revisions_reads_yaml_toml_and_json(
    experiments: Path, cli: Cli
) -> None:
    assert changes(cli, "params", "diff", "v1", "v2") == [
        {"file": "hp.json", "key": "seed", "old": 1, "new": 2, "change": 1},
        {"file": "params.yaml", "key": "train.lr", "old": 0.5, "new": 0.75, "change": 0.25},
    ]
    # one revision alone is compared with the workspace (here identical to v2)
    assert changes(cli, "params", "diff", "v1") == changes(cli, "params", "diff", "v1", "v2")
    doc = json.loads(cli("params", "diff", "v1", "--json").stdout)
    assert (doc["old"], doc["new"]) == ("v1", "workspace")


def test_params_diff_all_flattens_a_whole_section_and_lists_unchanged_keys(
    experiments: Path, cli: Cli
) -> None:
    found = {
        (c["file"], c["key"]): c["change"]
        for c in changes(cli, "params", "diff", "v1", "v2", "--all")
    }
    assert found == {
        ("cfg.toml", "opt.beta"): 0,
        ("hp.json", "seed"): 1,
        ("params.yaml", "train.epochs"): 0,
        ("params.yaml", "train.lr"): 0.25,
        ("params.yaml", "train.nested.depth"): 0,
    }  # never `other`, `opt.gamma` or `unused`: no stage declares them


def test_params_declared_only_at_the_new_revision_appear_as_added(
    experiments: Path, cli: Cli
) -> None:
    pipeline = PIPELINE.replace("- hp.json: [seed]", "- hp.json: [seed, unused]")
    (experiments / "repro.yaml").write_text(pipeline)
    assert changes(cli, "params", "diff") == [
        {"file": "hp.json", "key": "unused", "old": None, "new": 8, "change": None}
    ]
    assert rows(cli("params", "diff").stdout)[1] == ["hp.json", "unused", "-", "8", "-"]


def test_workspace_is_a_revision_name_on_either_side(experiments: Path, cli: Cli) -> None:
    (experiments / "params.yaml").write_text(params_yaml(0.25, other=7))
    forward = changes(cli, "params", "diff", "HEAD", "workspace")
    backward = changes(cli, "params", "diff", "workspace", "HEAD")
    assert forward == [
        {"file": "params.yaml", "key": "train.lr", "old": 0.75, "new": 0.25, "change": -0.5}
    ]
    assert backward == [
        {"file": "params.yaml", "key": "train.lr", "old": 0.25, "new": 0.75, "change": 0.5}
    ]
    assert rows(cli("params", "diff").stdout)[1][-1] == "−0.5"


# --- metrics diff ---------------------------------------------------------------------------


def test_metrics_diff_gives_numeric_changes_and_none_for_booleans_and_strings(
    experiments: Path, cli: Cli
) -> None:
    assert changes(cli, "metrics", "diff", "v1", "v2") == [
        {"file": "eval/scores.yaml", "key": "auc", "old": 0.75, "new": 0.875, "change": 0.125},
        {"file": "metrics.json", "key": "acc", "old": 0.5, "new": 0.75, "change": 0.25},
        {"file": "metrics.json", "key": "converged", "old": False, "new": True, "change": None},
        {"file": "metrics.json", "key": "loss.train", "old": 1.5, "new": 1.25, "change": -0.25},
        {"file": "metrics.json", "key": "n", "old": 10, "new": 12, "change": 2},
        {"file": "metrics.json", "key": "note", "old": "baseline", "new": "tuned", "change": None},
    ]


def test_metrics_diff_treats_a_boolean_turned_number_as_a_change_without_delta(
    experiments: Path, cli: Cli
) -> None:
    (experiments / "metrics.json").write_text(json.dumps({**V2_METRICS, "converged": 1}))
    assert changes(cli, "metrics", "diff") == [
        {"file": "metrics.json", "key": "converged", "old": True, "new": 1, "change": None}
    ]


def test_metrics_diff_all_lists_unchanged_keys(experiments: Path, cli: Cli) -> None:
    plain = {(c["file"], c["key"]) for c in changes(cli, "metrics", "diff", "v1", "v2")}
    everything = {
        (c["file"], c["key"]): c for c in changes(cli, "metrics", "diff", "v1", "v2", "--all")
    }
    assert set(everything) - plain == {
        ("eval/scores.yaml", "per_class.cat"),
        ("metrics.json", "loss.test"),
    }
    assert everything["metrics.json", "loss.test"]["change"] == 0
    assert changes(cli, "metrics", "diff") == []
    assert len(changes(cli, "metrics", "diff", "--all")) == len(everything)


def test_metrics_diff_prints_a_markdown_table(experiments: Path, cli: Cli) -> None:
    assert cli("metrics", "diff", "v1", "v2", "--md").stdout.splitlines() == [
        "| Path | Metric | v1 | v2 | Change |",
        "|---|---|---|---|---|",
        "| eval/scores.yaml | auc | 0.75 | 0.875 | +0.125 |",
        "| metrics.json | acc | 0.5 | 0.75 | +0.25 |",
        "| metrics.json | converged | false | true | - |",
        "| metrics.json | loss.train | 1.5 | 1.25 | −0.25 |",
        "| metrics.json | n | 10 | 12 | +2 |",
        "| metrics.json | note | baseline | tuned | - |",
    ]


def test_metrics_diff_defaults_to_head_against_the_workspace(experiments: Path, cli: Cli) -> None:
    (experiments / "metrics.json").write_text(json.dumps({**V2_METRICS, "acc": 0.5}))
    assert rows(cli("metrics", "diff").stdout) == [
        ["Path", "Metric", "HEAD", "workspace", "Change"],
        ["metrics.json", "acc", "0.75", "0.5", "−0.25"],
    ]


# --- metrics show ---------------------------------------------------------------------------


def shown(cli: Cli, *args: str) -> dict[str, dict[str, dict[str, Any]]]:
    """`metrics show --json` as {revision: {file: {key: value}}}."""
    doc = json.loads(cli("metrics", "show", *args, "--json").stdout)
    assert doc["version"] == 1
    return {r["revision"]: r["metrics"] for r in doc["revisions"]}


V1_SHOWN = {
    "eval/scores.yaml": {"auc": 0.75, "per_class.cat": 0.5},
    "metrics.json": {
        "acc": 0.5,
        "converged": False,
        "loss.test": 2.0,
        "loss.train": 1.5,
        "n": 10,
        "note": "baseline",
    },
}
V2_SHOWN = {
    "eval/scores.yaml": {"auc": 0.875, "per_class.cat": 0.5},
    "metrics.json": {
        "acc": 0.75,
        "converged": True,
        "loss.test": 2.0,
        "loss.train": 1.25,
        "n": 12,
        "note": "tuned",
    },
}


def test_metrics_show_defaults_to_the_workspace_with_flattened_keys(
    experiments: Path, cli: Cli
) -> None:
    assert shown(cli) == {"workspace": V2_SHOWN}
    table = rows(cli("metrics", "show").stdout)
    assert table[0] == [
        "Revision",
        "Path",
        "acc",
        "auc",
        "converged",
        "loss.test",
        "loss.train",
        "n",
        "note",
        "per_class.cat",
    ]
    assert table[1:] == [
        ["workspace", "eval/scores.yaml", "-", "0.875", "-", "-", "-", "-", "-", "0.5"],
        ["workspace", "metrics.json", "0.75", "-", "true", "2", "1.25", "12", "tuned", "-"],
    ]


def test_metrics_show_named_revisions_in_the_order_given(experiments: Path, cli: Cli) -> None:
    doc = json.loads(cli("metrics", "show", "v2", "v1", "--json").stdout)
    assert [(r["revision"], r["commit"]) for r in doc["revisions"]] == [
        ("v2", git(experiments, "rev-parse", "v2").strip()),
        ("v1", git(experiments, "rev-parse", "v1").strip()),
    ]
    assert shown(cli, "v1") == {"v1": V1_SHOWN}
    md = cli("metrics", "show", "v1", "--md").stdout.splitlines()
    assert md[0].startswith("| Revision | Path | acc |")
    assert md[1].startswith("|---|---|")
    assert md[3].startswith("| v1 | metrics.json | 0.5 | - | false |")


def test_metrics_show_all_tags_branches_and_commits(experiments: Path, cli: Cli) -> None:
    git(experiments, "branch", "exp", "v1")
    (experiments / "metrics.json").write_text(json.dumps({"acc": 1.0}))

    tags = shown(cli, "--all-tags")
    assert list(tags) == ["workspace", "v1", "v2"]
    assert tags["workspace"]["metrics.json"] == {"acc": 1.0}
    assert tags["v1"] == V1_SHOWN and tags["v2"] == V2_SHOWN

    branches = shown(cli, "--all-branches")
    assert list(branches) == ["workspace", "exp", "main"]
    assert branches["exp"] == V1_SHOWN and branches["main"] == V2_SHOWN

    init = git(experiments, "rev-list", "--max-parents=0", "HEAD").strip()
    every = json.loads(cli("metrics", "show", "--all-commits", "--json").stdout)["revisions"]
    commits = {r["commit"] for r in every}
    assert len(every) == 4 and None in commits and init in commits  # workspace + 3 commits
    assert next(r for r in every if r["commit"] == init)["metrics"] == {}  # before repro.yaml
    table = rows(cli("metrics", "show", "--all-commits").stdout)
    assert [init[:8]] + ["-"] * (len(table[0]) - 1) in table  # no metrics: a row of dashes


def test_metrics_show_without_declared_metrics_says_so(repo: Path, cli: Cli) -> None:
    result = cli("metrics", "show")
    assert result.stdout == ""
    assert "no metrics" in result.stderr


def test_a_cached_metrics_file_is_read_at_an_old_revision_through_the_lock(
    repo: Path, cli: Cli
) -> None:
    make_tree(
        repo,
        {
            "repro.yaml": (
                "stages:\n  score:\n"
                f"    cmd: {PY} score.py\n"
                "    deps: [score.py, n.txt]\n"
                "    metrics:\n    - out/m.json:\n        cache: true\n"
            ),
            "score.py": (
                "import json, pathlib\n"
                "pathlib.Path('out').mkdir(exist_ok=True)\n"
                "n = int(open('n.txt').read())\n"
                "pathlib.Path('out/m.json').write_text(json.dumps({'n': n}))\n"
            ),
            "n.txt": "1\n",
        },
    )
    cli("run")
    git(repo, "add", "-A")
    commit(repo, "n=1")
    assert "out/m.json" not in git(repo, "ls-files")  # in the object cache, not in Git
    (repo / "n.txt").write_text("2\n")
    cli("run")

    assert shown(cli, "HEAD") == {"HEAD": {"out/m.json": {"n": 1}}}
    assert changes(cli, "metrics", "diff") == [
        {"file": "out/m.json", "key": "n", "old": 1, "new": 2, "change": 1}
    ]


# --- damage and errors ----------------------------------------------------------------------


def test_a_malformed_metrics_file_at_an_old_revision_is_a_warning_not_the_end(
    experiments: Path, cli: Cli
) -> None:
    (experiments / "metrics.json").write_text('{"acc": 0.5, ')
    commit(experiments, "broken metrics")
    git(experiments, "tag", "broken")
    (experiments / "metrics.json").write_text(json.dumps(V2_METRICS))
    commit(experiments, "fixed")

    result = cli("metrics", "show", "v1", "broken", "HEAD")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings and all("broken" in w and "metrics.json" in w for w in warnings)
    table = rows(result.stdout)
    assert [r[:2] for r in table[1:]] == [
        ["v1", "eval/scores.yaml"],
        ["v1", "metrics.json"],
        ["broken", "eval/scores.yaml"],
        ["HEAD", "eval/scores.yaml"],
        ["HEAD", "metrics.json"],
    ]

    diff = cli("metrics", "diff", "broken", "HEAD", "--json")
    assert "warning:" in diff.stderr and "metrics.json" in diff.stderr
    acc = next(c for c in json.loads(diff.stdout)["changes"] if c["key"] == "acc")
    assert acc == {"file": "metrics.json", "key": "acc", "old": None, "new": 0.75, "change": None}


def test_a_malformed_pipeline_at_an_old_revision_is_a_warning(experiments: Path, cli: Cli) -> None:
    (experiments / "repro.yaml").write_text("stages:\n  train: [not, a, stage]\n")
    commit(experiments, "broken pipeline")
    git(experiments, "tag", "broken")
    (experiments / "repro.yaml").write_text(PIPELINE)
    commit(experiments, "fixed")

    result = cli("params", "diff", "broken", "HEAD", "--json")
    assert "warning: broken: repro.yaml" in result.stderr
    added = {c["key"] for c in json.loads(result.stdout)["changes"] if c["old"] is None}
    assert added == {"seed", "train.epochs", "train.lr", "train.nested.depth", "opt.beta"}


@pytest.mark.parametrize(
    "args",
    [
        ("params", "diff", "nope"),
        ("params", "diff", "v1", "nope"),
        ("metrics", "diff", "nope"),
        ("metrics", "show", "v1", "nope"),
    ],
)
def test_an_unknown_revision_is_exit_2_with_one_line(
    experiments: Path, cli: Cli, args: tuple[str, ...]
) -> None:
    result = cli(*args, expect=2)
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == "error: unknown revision 'nope'"
    assert result.stderr.splitlines()[1].startswith("hint:")


def test_a_repository_without_commits_has_nothing_to_compare(git_repo: Path, cli: Cli) -> None:
    cli("init")
    result = cli("metrics", "diff", expect=2)
    assert result.stderr.startswith("error: nothing to compare")


def test_files_with_the_same_bytes_are_parsed_by_their_own_format(repo: Path, cli: Cli) -> None:
    make_tree(
        repo,
        {
            "repro.yaml": "stages:\n  s:\n    cmd: echo\n    metrics: [a.json, b.yaml]\n",
            "a.json": "acc: 1\n",  # not JSON: a warning
            "b.yaml": "acc: 1\n",  # the same bytes, valid YAML
        },
    )
    git(repo, "add", "-A")
    commit(repo, "metrics")
    assert shown(cli) == {"workspace": {"b.yaml": {"acc": 1}}}
    assert shown(cli, "HEAD") == {"HEAD": {"b.yaml": {"acc": 1}}}
