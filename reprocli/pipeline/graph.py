"""The stage graph: which stage feeds which, checked for clashes and cycles (the networkx user).

An edge runs from the stage that produces a path to every stage that depends on it (or on a
file inside it, when the output is a directory):

    prepare ──▶ featurize ──▶ train ──▶ evaluate
                    │                    ▲
                    └────────────────────┘   (evaluate also reads the featurized test set)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from reprocli.errors import InvalidFileError
from reprocli.pipeline.spec import FILE, Pipeline, Stage, is_inside

if TYPE_CHECKING:
    import networkx


class Graph:
    """Stages as nodes, producer → consumer edges; built once per command."""

    def __init__(self, pipeline: Pipeline, exists: Callable[[str], bool]) -> None:
        import networkx as nx  # noqa: PLC0415 - 100+ ms: only pipeline commands pay for it

        self.pipeline = pipeline
        self.stages = pipeline.stages
        self.dag: networkx.DiGraph = nx.DiGraph()
        self.dag.add_nodes_from(self.stages)
        producers = self._producers()
        for stage in self.stages.values():
            for dep in stage.deps:
                found = [
                    name for out, name in producers if is_inside(dep, out) or is_inside(out, dep)
                ]
                for producer in found:
                    if producer != stage.name:
                        self.dag.add_edge(producer, stage.name)
                if not found and not exists(dep):
                    raise InvalidFileError(
                        f"{FILE}:{stage.dep_line(dep)}: stage {stage.name!r}: deps: {dep!r} does "
                        "not exist and no stage produces it"
                    )
                if stage.name in found:
                    raise InvalidFileError(
                        f"{FILE}:{stage.dep_line(dep)}: stage {stage.name!r}: deps: {dep!r} is "
                        "also an output of this stage"
                    )
        try:
            cycle = nx.find_cycle(self.dag)
        except nx.NetworkXNoCycle:
            return
        names = [edge[0] for edge in cycle]
        producer, consumer = cycle[-1][0], cycle[-1][1]
        closing = self.stages[consumer]
        outs = [o.path for o in self.stages[producer].outs]
        dep = next(d for d in closing.deps if any(is_inside(d, o) or is_inside(o, d) for o in outs))
        raise InvalidFileError(
            f"{FILE}:{closing.dep_line(dep)}: stage {consumer!r}: deps: {dep!r} closes a cycle: "
            f"{' → '.join([*names, names[0]])}"
        )

    def _producers(self) -> list[tuple[str, str]]:
        """(output path, stage) pairs, refusing two stages claiming one path or nesting."""
        claimed: list[tuple[str, str]] = []
        for stage in self.stages.values():
            for out in stage.outs:
                for other_path, other in claimed:
                    field = "metrics" if out.metric else "outs"
                    where = f"{FILE}:{out.line or stage.line}: stage {stage.name!r}: {field}:"
                    if out.path == other_path:
                        raise InvalidFileError(
                            f"{where} {out.path!r} is already an output of stage {other!r}"
                        )
                    if is_inside(out.path, other_path) or is_inside(other_path, out.path):
                        inner, outer = sorted((out.path, other_path), key=len, reverse=True)
                        raise InvalidFileError(
                            f"{where} {inner!r} is inside output {outer!r}"
                            + (f" of stage {other!r}" if other != stage.name else "")
                        )
                claimed.append((out.path, stage.name))
        return claimed

    def order(self, targets: Iterable[str] = (), *, downstream: bool = False) -> list[str]:
        """Stages to consider, in a dependency order: the targets and what they need (all
        stages when no targets), or with `downstream` the targets and what depends on them."""
        import networkx as nx  # noqa: PLC0415

        wanted = list(targets)
        for name in wanted:
            if name not in self.stages:
                known = ", ".join(self.stages) or "none"
                raise InvalidFileError(f"{FILE}: no stage named {name!r} (stages: {known})")
        if not wanted:
            chosen = set(self.stages)
        else:
            chosen = set(wanted)
            for name in wanted:
                chosen |= (
                    nx.descendants(self.dag, name) if downstream else nx.ancestors(self.dag, name)
                )
        declared = list(self.stages)
        ordered = nx.lexicographical_topological_sort(self.dag, key=declared.index)
        return [name for name in ordered if name in chosen]

    def upstream(self, name: str) -> list[str]:
        """The stages whose outputs `name` reads directly."""
        return list(self.dag.predecessors(name))

    def render(self, fmt: str) -> str:
        """The graph as text, mermaid, dot or json."""
        order = self.order()
        edges = sorted(self.dag.edges, key=lambda e: (order.index(e[0]), order.index(e[1])))
        if fmt == "json":
            return json.dumps(
                {
                    "version": 1,
                    "stages": [self._stage_json(self.stages[n]) for n in order],
                    "edges": [{"from": a, "to": b} for a, b in edges],
                },
                indent=2,
                sort_keys=True,
            )
        if fmt == "mermaid":
            lines = ["flowchart TD"]
            lines += [f'    {_mermaid_id(n)}["{n}"]' for n in order]
            lines += [f"    {_mermaid_id(a)} --> {_mermaid_id(b)}" for a, b in edges]
            return "\n".join(lines)
        if fmt == "dot":
            lines = ["digraph pipeline {", "    rankdir=LR;"]
            lines += [f"    {json.dumps(n)};" for n in order]
            lines += [f"    {json.dumps(a)} -> {json.dumps(b)};" for a, b in edges]
            return "\n".join([*lines, "}"])
        lines = []
        for name in order:
            after = sorted(self.dag.predecessors(name), key=order.index)
            lines.append(name + (f"  ← {', '.join(after)}" if after else ""))
        return "\n".join(lines)

    @staticmethod
    def _stage_json(stage: Stage) -> dict[str, Any]:
        return {
            "name": stage.name,
            "cmd": list(stage.cmd),
            "deps": list(stage.deps),
            "outs": [o.path for o in stage.outs],
        }


def _mermaid_id(name: str) -> str:
    return "s_" + "".join(c if c.isalnum() else "_" for c in name)
