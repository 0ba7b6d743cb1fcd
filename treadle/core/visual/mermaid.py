"""Mermaid text of a run's graph, for the command line and for documents.

Draws the same :class:`~treadle.core.visual.graph.Graph` as the SVG renderer: one node per
group, parallel groups side by side (a fan-out from the stage before, a fan-in to the one
after), colour classes by outcome. Pure.
"""

from __future__ import annotations

from treadle.core.visual.graph import Graph, Node
from treadle.core.visual.steps import Outcome, StepKind

__all__ = ["render_mermaid"]

_CLASSES = {
    Outcome.COMPLETED: "classDef completed fill:#d8f3e0,stroke:#2e9d5b,color:#12381f",
    Outcome.FAILED: "classDef failed fill:#fbdcdc,stroke:#d64545,color:#4a1010",
    Outcome.PENDING: "classDef pending fill:#fdf1c7,stroke:#c99700,color:#3d2f00",
}
_SHAPES = {
    StepKind.ACTIVITY: ('["', '"]'),
    StepKind.TIMER: ('(["', '"])'),
    StepKind.CHILD: ('[["', '"]]'),
    StepKind.EVENT: ('>"', '"]'),
    StepKind.SENT: ('>"', '"]'),
}


def render_mermaid(graph: Graph) -> str:
    """The graph as a Mermaid ``flowchart`` (top to bottom), ending with a newline."""
    lines = ["flowchart TD", f'    start(("{_text(graph.name or "workflow")}"))']
    previous = ["start"]
    for index, stage in enumerate(graph.stages):
        ids = []
        for number, node in enumerate(stage.nodes):
            node_id = f"s{index}n{number}"
            ids.append(node_id)
            opening, closing = _SHAPES[node.kind]
            shape = f"{opening}{_node_text(node)}{closing}"
            lines.append(f"    {node_id}{shape}:::{node.outcome.value}")
        lines.extend(_edges(previous, ids))
        previous = ids
    end_class = _end_class(graph)
    if end_class is not None:
        status = graph.status.name + (f": {graph.failure}" if graph.failure else "")
        lines.append(f'    finish(("{_text(status)}")):::{end_class.value}')
        lines.extend(_edges(previous, ["finish"]))
    lines.extend(f"    {_CLASSES[outcome]}" for outcome in Outcome)
    return "\n".join(lines) + "\n"


def _edges(sources: list[str], targets: list[str]) -> list[str]:
    if len(sources) > 1 and len(targets) > 1:
        # Through a join point, not every pair: a fan-in then a fan-out.
        join = f"j_{targets[0]}"
        return [
            f"    {join}(( ))",
            *(f"    {s} --> {join}" for s in sources),
            *(f"    {join} --> {t}" for t in targets),
        ]
    return [f"    {s} --> {t}" for s in sources for t in targets]


def _end_class(graph: Graph) -> Outcome | None:
    if not graph.status.is_terminal:
        return None
    return Outcome.COMPLETED if graph.status.name == "COMPLETED" else Outcome.FAILED


def _node_text(node: Node) -> str:
    summary = node.summary
    return _text(node.label) + (f"<br/>{_text(summary)}" if summary else "")


def _text(value: str) -> str:
    """Text safe inside a quoted Mermaid label (quotes and markup as entities)."""
    return (
        value.replace("&", "#amp;")
        .replace('"', "#quot;")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
        .replace("\n", " ")
    )
