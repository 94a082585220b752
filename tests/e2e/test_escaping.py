"""Everything printed from a repository is escaped for its medium (security issue, hole 12).

A cloned repository is a stranger's input, and `repro metrics diff --md` is posted to pull
requests (docs/ci.md). Hostile names, built from families (every C0 and C1 control character,
escape sequences that clear the screen, write the clipboard or hide a hyperlink, bidi
overrides, rich markup, Markdown and HTML injections), go in as metric names, parameter names,
string values, revision names, paths, stage names, remote names and commit messages, and come
out through the `repro` command in text, `--md` and `--json`:

- no raw control character reaches stdout or stderr (the line ends aside); a name shows as
  itself with its invisible characters spelled out, as Python writes them (`\\x1b`, `\\u202e`);
- a table keeps one line per row, and a Markdown table the same number of cells on every row,
  with nothing in a cell that Markdown or HTML would act on (no unescaped `](`, `<img`, `|`);
- `--json` is ASCII, and decodes to the exact names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.builders import commit, git, make_tree
from tests.conftest import Cli, Result

# --- the hostile names ----------------------------------------------------------------------

ESCAPE_SEQUENCES = [
    "clear\x1b[2J\x1b[H",  # CSI: clear the screen, cursor home
    "red\x1b[31mred\x1b[0m",  # SGR colours
    "link\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",  # OSC 8 hyperlink
    "clip\x1b]52;c;ZXZpbA==\x07",  # OSC 52: write the clipboard
    "c1csi\x9b2J",  # the one-byte C1 CSI
    "title\x1b]0;owned\x07",  # OSC 0: window title
    "over\rwritten",  # a carriage return rewrites the line
]
BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]
RICH_MARKUP = [
    "[link=https://evil.example]x[/link]",
    "[bold red]loud",
    "closing[/]",
    "x[/bold]",
    "[on red]  [/on red]",
]
MARKDOWN = [
    "acc](https://evil.example) <img src=x onerror=alert(1)>",
    "![img](https://evil.example/x.png)",
    "[x](javascript:alert(1))",
    "a|b",
    "a\n# injected",
    "row\n| a | b |",
    "<script>alert(1)</script>",
    "<!-- hidden",
    "**bold** _em_ `code` ~~gone~~",
    "$\\color{red}{x}$",
    "&lt;img&gt; &amp;",
    "back\\slash\\",
    "[ref]: https://evil.example",
    "trailing\\",
]


def hostile_names() -> list[str]:
    """Every family, one name per character or injection, each distinct."""
    names = [f"c0-{i:02x}-{chr(i)}-" for i in range(0x20)]
    names.append("del-\x7f-")
    names += [f"c1-{i:02x}-{chr(i)}-" for i in range(0x80, 0xA0)]
    names += [f"bidi-{ord(c):04x}-{c}-" for c in BIDI]
    names += ESCAPE_SEQUENCES + RICH_MARKUP + MARKDOWN
    assert len(set(names)) == len(names)
    return names


NAMES = hostile_names()
REV = "v1](evil)|<img>&amp;_x_"  # a legal Git tag name (no space, colon or //)
PATH_NAMES = ["[link=evil]x", "[bold red]x", "a|b", "<img src=x>", "*star*", "](x)", "[on red]"]


# --- what "escaped" means, checked independently of the code --------------------------------


def visible(text: str) -> str:
    """How a name must show on a terminal: each invisible character spelled out, Python style."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def raw_controls(text: str, allow: str = "\n") -> list[str]:
    """Characters a terminal would act on, other than line ends (and `allow`)."""
    return sorted({repr(c) for c in text if c not in allow and not c.isprintable()})


def assert_clean(result: Result, allow: str = "\n") -> None:
    assert raw_controls(result.stdout, allow) == []
    assert raw_controls(result.stderr, allow) == []


MD_ESCAPE = re.compile(r"\\[!-/:-@\[-`{-~]")  # CommonMark: a backslash before ASCII punctuation
MD_ENTITY = re.compile(r"&(amp|lt|gt|quot|#\d+);")
MD_ACTIVE = set("\\`*_[]<>|~$&")  # what would start a link, image, emphasis, code, HTML, cell


def md_cells(line: str) -> list[str]:
    """A Markdown table row split as GFM does: at every `|` not escaped by a backslash."""
    assert line.startswith("| ") and line.endswith(" |"), line
    cells, current, i, body = [], "", 0, line[1:-1]
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            current += body[i : i + 2]
            i += 2
            continue
        if body[i] == "|":
            cells.append(current.strip())
            current = ""
        else:
            current += body[i]
        i += 1
    cells.append(current.strip())
    return cells


def md_text(cell: str) -> str:
    """What a Markdown renderer shows for a cell, after checking nothing in it is active."""
    bare = MD_ENTITY.sub("", MD_ESCAPE.sub("", cell))
    assert not (set(bare) & MD_ACTIVE), f"unescaped Markdown in {cell!r}"
    entities = {"amp": "&", "lt": "<", "gt": ">", "quot": '"'}
    shown = MD_ESCAPE.sub(lambda m: m.group(0)[1], cell)
    return MD_ENTITY.sub(
        lambda m: entities.get(m.group(1)) or chr(int(m.group(1)[1:])),
        # entities were written by the escaper only; escaped `&` are already plain text here
        shown,
    )


def md_table(text: str) -> list[list[str]]:
    """A whole `--md` table, as the cells a reader sees; every row has the header's width."""
    lines = text.splitlines()
    assert len(lines) >= 2 and re.fullmatch(r"\|(---\|)+", lines[1]), text[:300]
    width = lines[1].count("---")
    rows = []
    for line in [lines[0], *lines[2:]]:
        cells = md_cells(line)
        assert len(cells) == width, f"{len(cells)} cells, not {width}: {line!r}"
        rows.append([md_text(c) for c in cells])
    return rows


# --- a project full of hostile names --------------------------------------------------------

PIPELINE = """\
stages:
  train:
    cmd: "true"
    params:
    - hp.json: [h]
    metrics:
    - metrics.json
    - values.json
"""


def write_side(root: Path, *, hostile: bool) -> None:
    """Metrics and parameters: safe values at the tag, hostile strings in the workspace."""
    make_tree(
        root,
        {
            "metrics.json": json.dumps({n: 2 if hostile else 1 for n in NAMES}),
            "values.json": json.dumps(
                {f"v{i:03d}": n if hostile else "old" for i, n in enumerate(NAMES)}
            ),
            "hp.json": json.dumps({"h": {n: n if hostile else 1 for n in NAMES}}),
        },
    )


@pytest.fixture
def hostile(repo: Path) -> Path:
    """REV has safe values under hostile names; the workspace has hostile values too."""
    make_tree(repo, {"repro.yaml": PIPELINE})
    write_side(repo, hostile=False)
    git(repo, "add", "-A")
    commit(repo, "safe values")
    git(repo, "tag", REV)
    write_side(repo, hostile=True)
    return repo


COMMANDS = {
    "metrics diff": ("metrics", "diff", REV),
    "metrics show": ("metrics", "show", "--all-tags"),
    "params diff": ("params", "diff", REV),
}


def expected_names(command: str) -> set[str]:
    """Every hostile string the command must show: keys, values and the revision."""
    if command == "params diff":
        return {f"h.{n}" for n in NAMES} | set(NAMES) | {REV}
    return set(NAMES) | {REV}


@pytest.mark.parametrize("command", COMMANDS)
def test_hostile_names_and_values_print_escaped_as_text(
    hostile: Path, cli: Cli, command: str
) -> None:
    result = cli(*COMMANDS[command])
    assert_clean(result)
    lines = result.stdout.splitlines()
    per_file = {"metrics show": 4 / len(NAMES), "metrics diff": 2, "params diff": 1}[command]
    rows = 1 + round(len(NAMES) * per_file)  # metrics show: 2 revisions x 2 files
    assert len(lines) == rows  # no name broke a row in two
    missing = [n for n in expected_names(command) if visible(n) not in result.stdout]
    assert missing == []
    assert "[link=https://evil.example]x[/link]" in result.stdout  # rich markup, literally


@pytest.mark.parametrize("command", COMMANDS)
def test_hostile_names_and_values_print_escaped_in_markdown(
    hostile: Path, cli: Cli, command: str
) -> None:
    result = cli(*COMMANDS[command], "--md")
    assert_clean(result)
    for needle in ("<img", "<script", "<!--", "\n#", "**"):
        assert needle not in result.stdout
    table = md_table(result.stdout)  # same width everywhere, nothing active in any cell
    shown = {cell for row in table for cell in row}
    missing = [n for n in expected_names(command) if visible(n) not in shown]
    assert missing == []


def test_numbers_stay_numbers_in_markdown(hostile: Path, cli: Cli) -> None:
    (hostile / "metrics.json").write_text(json.dumps({"acc": -0.25, "n": 1.5e6}))
    (hostile / "values.json").write_text("{}")
    table = cli("metrics", "show", "--md").stdout.splitlines()
    assert table[0] == "| Revision | Path | acc | n |"
    assert table[2] == "| workspace | metrics.json | -0.25 | 1.5e+06 |"


def test_dates_and_times_in_values_are_iso_text_in_json(hostile: Path, cli: Cli) -> None:
    (hostile / "values.json").write_text("{}")
    (hostile / "metrics.json").unlink()
    pipeline = PIPELINE.replace("metrics.json", "m.toml").replace("values.json", "m.yaml")
    make_tree(
        hostile,
        {
            "repro.yaml": pipeline,
            "m.toml": "d = 2024-01-01\nt = 07:32:00\n",
            "m.yaml": "w: 2024-01-02",
        },
    )
    [row] = json.loads(cli("metrics", "show", "--json").stdout)["revisions"]
    assert row["metrics"] == {
        "m.toml": {"d": "2024-01-01", "t": "07:32:00"},
        "m.yaml": {"w": "2024-01-02"},
    }


@pytest.mark.parametrize("command", COMMANDS)
def test_hostile_names_and_values_round_trip_in_json(hostile: Path, cli: Cli, command: str) -> None:
    result = cli(*COMMANDS[command], "--json")
    assert_clean(result)
    assert result.stdout.isascii()  # no raw byte of a name reaches the terminal
    strings: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, str):
            strings.add(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                strings.add(key)
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(json.loads(result.stdout))
    assert expected_names(command) - strings == set()


def test_markdown_without_changes_escapes_the_revision_names(hostile: Path, cli: Cli) -> None:
    git(hostile, "add", "-A")
    commit(hostile, "hostile values")
    git(hostile, "tag", "new](x)<b>|")
    result = cli("metrics", "diff", "HEAD", "new](x)<b>|", "--md")
    assert_clean(result)
    line = result.stdout.strip()
    assert line.startswith("_No metric changes between ") and line.endswith("._")
    assert md_text(line[1:-2]) == "No metric changes between HEAD and new](x)<b>|"


# --- stages, parameters in plans, paths, history, remotes, errors ---------------------------


@pytest.mark.parametrize(
    "name", ["bad\x1b[2Jname", "[bold]x", "a\u202eb", "x\n# y", "c1\x9b2J", "a|b](x)"]
)
def test_a_bad_stage_name_is_refused_with_an_escaped_message(
    repo: Path, cli: Cli, name: str
) -> None:
    make_tree(repo, {"repro.yaml": "stages:\n  " + json.dumps(name) + ':\n    cmd: "true"\n'})
    for args in (("dag",), ("run", "--dry"), ("status",), ("metrics", "show", "--md")):
        result = cli(*args, expect=2)
        assert_clean(result)
        assert result.stdout == ""
        assert len([x for x in result.stderr.splitlines() if x.startswith("error: ")]) == 1
        assert "bad stage name" in result.stderr
        assert visible(name) in result.stderr


def test_hostile_param_names_in_run_dry_and_status_stay_on_one_line(repo: Path, cli: Cli) -> None:
    keys = [n for n in NAMES if "." not in n]  # a dot would name a nested key
    params = "[" + ", ".join(json.dumps(k) for k in keys) + "]"  # JSON strings are YAML too
    pipeline = f'stages:\n  train:\n    cmd: "true"\n    params:\n    - hp.json: {params}\n'
    make_tree(repo, {"repro.yaml": pipeline, "hp.json": json.dumps(dict.fromkeys(keys, 1))})
    cli("run")
    (repo / "hp.json").write_text(json.dumps({k: k for k in keys}))
    for result in (cli("run", "--dry"), cli("status")):
        assert_clean(result)
        [line] = [x for x in (result.stdout + result.stderr).splitlines() if x.startswith("train")]
        missing = [k for k in keys if visible(f"param {k}: 1 → {k!r}") not in line]
        assert missing == []
    for args in (("run", "--dry"), ("status",)):
        result = cli(*args, "--json")
        assert result.stdout.isascii()
        reasons = json.loads(result.stdout)["stages"][0]["reasons"]
        assert {f"param {k}: 1 → {k!r}" for k in keys} <= set(reasons)


def test_paths_with_markup_characters_print_literally(repo: Path, cli: Cli) -> None:
    files = {f"data/{name}.csv": "1\n" for name in PATH_NAMES}
    make_tree(repo, files)
    outputs = [cli("add", "data")]
    commit(repo, "data")
    for rel in files:
        (repo / rel).write_text("2\n")
    outputs += [cli("status"), cli("diff"), cli("commit"), cli("log", "data")]
    for rel in files:
        (repo / rel).unlink()
    outputs += [cli("status"), cli("checkout")]
    text = "\n".join(r.stdout + r.stderr for r in outputs)
    for r in outputs:
        assert_clean(r)
    for rel in files:
        assert rel.removeprefix("data/") in text


def test_commit_messages_and_commands_in_log_are_escaped(repo: Path, cli: Cli) -> None:
    make_tree(repo, {"data/a.csv": "1\n"})
    cli("add", "data")
    message = "msg\x1b]52;c;ZXZpbA==\x07 [bold]x\u202e\nsecond line"
    git(repo, "commit", "-q", "-m", message)
    result = cli("log", "data")
    assert_clean(result)
    assert visible("msg\x1b]52;c;ZXZpbA==\x07 [bold]x\u202e") in result.stdout


REMOTE_NAMES = ["evil\x1b]52;c;ZXZpbA==\x07", "[link=https://evil.example]r[/link]", "r\u202e"]


@pytest.mark.parametrize("name", REMOTE_NAMES)
def test_a_hostile_remote_name_in_the_tracked_config_is_refused_and_shown_escaped(
    repo: Path, cli: Cli, tmp_path: Path, name: str
) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    with (repo / ".repro/config.yaml").open("a") as config:
        config.write(f"remotes:\n  {json.dumps(name)}:\n    url: {folder}\n")
    for args in (("remote", "list"), ("status",), ("push", "-r", name)):
        result = cli(*args, expect=2)
        assert_clean(result)
        assert "config.yaml: remote name" in result.stderr


def test_remote_names_the_user_gives_are_escaped_in_errors(repo: Path, cli: Cli) -> None:
    result = cli("status", "--remote", "-r", "nope\x1b[2J", expect=2)
    assert_clean(result)
    assert visible("nope\x1b[2J") in result.stderr


@pytest.mark.parametrize("name", ["rev\x1b[2J", "[bold]rev", "rev\u202e", "rev\nerror: fake"])
def test_error_messages_escape_what_they_quote(repo: Path, cli: Cli, name: str) -> None:
    for args in (("metrics", "diff", name), ("log", "--rev", name, "x"), ("dag", "--format", name)):
        result = cli(*args, expect=2)
        assert_clean(result)
        assert result.stderr.startswith("error: ")
        assert len([x for x in result.stderr.splitlines() if x.startswith("error:")]) == 1


def test_progress_descriptions_are_not_rich_markup() -> None:
    from reprocli.cli import render

    bar = render._RichProgress()
    try:
        for text in ("hashing data/[link=https://evil.example]x[/link]", "x[/bold]", "a\x1b[2J"):
            bar.start(text, 1)
            shown = bar.bar.columns[0].render(bar.bar.tasks[-1])
            assert shown.plain == visible(text)
    finally:
        bar.close()
