"""SVG pictures of a run: its graph and its timeline, for the dashboard and for files.

Every text is XML-escaped; colours are presentation attributes (no ``style`` attributes and
no script), so the pictures can be inlined in a page whose Content-Security-Policy forbids
inline code. Text is drawn in ``currentColor``: it follows the page's light or dark theme.
Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from xml.sax.saxutils import escape, quoteattr

from treadle.core.visual.graph import Graph, Node, format_duration
from treadle.core.visual.steps import Outcome, StepKind
from treadle.core.visual.timeline import Timeline

__all__ = ["render_graph_svg", "render_timeline_svg"]

_STROKE = {Outcome.COMPLETED: "#2e9d5b", Outcome.FAILED: "#d64545", Outcome.PENDING: "#c99700"}
_NODE_W, _NODE_H, _GAP_X, _ROW_H, _MARGIN = 210, 50, 24, 86, 20
MAX_NODES_PER_ROW = 8
"""Distinct groups drawn side by side in one stage; the rest are summed in one more node."""

Link = Callable[[str], str]
"""Gives the URL of a child instance's page (from its id)."""


def render_graph_svg(graph: Graph, *, link: Link | None = None) -> str:
    """The graph as an SVG document, top to bottom.

    Args:
        graph: from :func:`~treadle.core.visual.graph.build_graph`.
        link: the URL of a child workflow's page, to make child nodes links (none: plain).
    """
    rows: list[list[tuple[str, str, str, Outcome | None, str | None, str]]] = []
    rows.append([("start", graph.name or "workflow", "start", None, None, "")])
    for stage in graph.stages:
        nodes = stage.nodes[:MAX_NODES_PER_ROW]
        row = [_node_cells(node, link) for node in nodes]
        hidden = stage.nodes[MAX_NODES_PER_ROW:]
        if hidden:
            count = sum(n.count for n in hidden)
            row.append(("more", f"+{len(hidden)} more groups", f"{count} steps", None, None, ""))
        rows.append(row)
    if graph.status.is_terminal:
        ok = graph.status.name == "COMPLETED"
        rows.append(
            [
                (
                    "end",
                    graph.status.name,
                    graph.failure or "",
                    Outcome.COMPLETED if ok else Outcome.FAILED,
                    None,
                    "",
                )
            ]
        )
    widest = max(len(r) for r in rows)
    width = _MARGIN * 2 + widest * _NODE_W + (widest - 1) * _GAP_X
    height = _MARGIN * 2 + len(rows) * _ROW_H - (_ROW_H - _NODE_H)
    parts = [_open(width, height, "graph")]
    centers: list[list[float]] = []
    for index, row in enumerate(rows):
        row_w = len(row) * _NODE_W + (len(row) - 1) * _GAP_X
        left = (width - row_w) / 2
        centers.append([left + i * (_NODE_W + _GAP_X) + _NODE_W / 2 for i in range(len(row))])
        if index:
            parts.append(_edges(centers[index - 1], centers[index], index))
    for index, row in enumerate(rows):
        y = _MARGIN + index * _ROW_H
        for cx, cell in zip(centers[index], row, strict=True):
            parts.append(_draw_node(cx - _NODE_W / 2, y, *cell))
    parts.append("</svg>\n")
    return "".join(parts)


def _node_cells(
    node: Node, link: Link | None
) -> tuple[str, str, str, Outcome | None, str | None, str]:
    href = None
    if link is not None and node.kind is StepKind.CHILD and node.child_ids:
        href = link(node.child_ids[0])
    tip = ""
    if node.child_ids:
        tip = "children: " + ", ".join(node.child_ids)
    return (node.kind.value, node.label, node.summary, node.outcome, href, tip)


def _open(width: float, height: float, what: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="treadle-{what}" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'font-family="system-ui, sans-serif" font-size="13" role="img">'
    )


def _edges(upper: list[float], lower: list[float], row: int) -> str:
    y1 = _MARGIN + (row - 1) * _ROW_H + _NODE_H
    y2 = _MARGIN + row * _ROW_H
    mid = (y1 + y2) / 2
    out = []
    if len(upper) > 1 and len(lower) > 1:
        join = sum(lower) / len(lower)
        out += [_line(x, y1, join, mid) for x in upper]
        out += [_line(join, mid, x, y2) for x in lower]
    else:
        out += [_line(a, y1, b, y2) for a in upper for b in lower]
    return "".join(out)


def _line(x1: float, y1: float, x2: float, y2: float) -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
        'stroke="#888" stroke-width="1.5"/>'
    )


def _draw_node(
    x: float,
    y: float,
    kind: str,
    title: str,
    summary: str,
    outcome: Outcome | None,
    href: str | None,
    tip: str,
) -> str:
    stroke = _STROKE[outcome] if outcome is not None else "#888"
    rx = {"timer": 22, "event": 22, "start": 25, "end": 25}.get(kind, 6)
    dash = ' stroke-dasharray="5 3"' if kind in ("timer", "more") else ""
    width = 3 if kind == "child" else 2
    state = outcome.value if outcome is not None else "none"
    body = (
        f'<g class="node node-{kind} outcome-{state}">'
        f"<title>{escape(title)}{escape(' — ' + summary) if summary else ''}"
        f"{escape(chr(10) + tip) if tip else ''}</title>"
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{_NODE_W}" height="{_NODE_H}" rx="{rx}" '
        f'fill="{stroke}" fill-opacity="0.14" stroke="{stroke}" stroke-width="{width}"{dash}/>'
        f'<text x="{x + _NODE_W / 2:.1f}" y="{y + (20 if summary else 30):.1f}" '
        f'text-anchor="middle" fill="currentColor" font-weight="600">'
        f"{escape(_fit(title, 28))}</text>"
    )
    if summary:
        body += (
            f'<text x="{x + _NODE_W / 2:.1f}" y="{y + 38:.1f}" text-anchor="middle" '
            f'fill="currentColor" font-size="11">{escape(_fit(summary, 34))}</text>'
        )
    body += "</g>"
    if href is not None:
        return f"<a href={quoteattr(href)}>{body}</a>"
    return body


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_LANE_H, _TL_W, _AXIS_H, _CHAR_W = 24, 880, 26, 6.5


def render_timeline_svg(timeline: Timeline) -> str:
    """The timeline as an SVG document: lanes top to bottom, time left to right."""
    inner = _TL_W - 2 * _MARGIN
    scale = inner / timeline.total_s if timeline.total_s > 0 else 0.0
    height = _MARGIN * 2 + _AXIS_H + max(1, timeline.lanes) * _LANE_H
    parts = [_open(_TL_W, height, "timeline")]
    parts.append(_axis(timeline.total_s, scale, height))
    room = _label_room(timeline, scale)
    for index, bar in enumerate(timeline.bars):
        x = _MARGIN + bar.start_s * scale
        w = max(2.0, (bar.end_s - bar.start_s) * scale)
        y = _MARGIN + _AXIS_H + bar.lane * _LANE_H
        stroke = _STROKE[bar.outcome]
        took = format_duration(bar.end_s - bar.start_s)
        attempts = f", {bar.attempts} attempts" if bar.attempts > 1 else ""
        tip = f"{bar.label}: {took}{attempts} ({bar.outcome.value})"
        # The label runs from the bar's start up to the next bar of its lane, cut to fit.
        chars = int((room[index] - 6) / _CHAR_W)
        label = _fit(f"{bar.label} {took}{attempts}", chars) if chars >= 4 else ""
        parts.append(
            f'<g class="bar bar-{bar.kind.value} outcome-{bar.outcome.value}">'
            f"<title>{escape(tip)}</title>"
            f'<rect x="{x:.1f}" y="{y + 2:.1f}" width="{w:.1f}" height="{_LANE_H - 4}" rx="3" '
            f'fill="{stroke}" fill-opacity="0.35" stroke="{stroke}"/>'
            f'<text x="{x + 4:.1f}" y="{y + _LANE_H / 2 + 4:.1f}" fill="currentColor" '
            f'font-size="11">{escape(label)}</text></g>'
        )
    parts.append("</svg>\n")
    return "".join(parts)


def _label_room(timeline: Timeline, scale: float) -> list[float]:
    """For each bar, the width from its start to the next bar's start in its lane (or to
    the picture's right edge)."""
    room = [0.0] * len(timeline.bars)
    by_lane: dict[int, list[int]] = {}
    for index, bar in enumerate(timeline.bars):
        by_lane.setdefault(bar.lane, []).append(index)
    for indexes in by_lane.values():
        ordered = sorted(indexes, key=lambda i: timeline.bars[i].start_s)
        for here, after in zip(ordered, [*ordered[1:], None], strict=True):
            end = (
                _TL_W - _MARGIN if after is None else _MARGIN + timeline.bars[after].start_s * scale
            )
            room[here] = end - (_MARGIN + timeline.bars[here].start_s * scale)
    return room


def _axis(total: float, scale: float, height: float) -> str:
    out = []
    ticks = 5
    for i in range(ticks + 1):
        at = total * i / ticks
        x = _MARGIN + at * scale
        anchor = "start" if i == 0 else "end" if i == ticks else "middle"
        out.append(
            f'<line x1="{x:.1f}" y1="{_MARGIN + _AXIS_H - 6}" x2="{x:.1f}" '
            f'y2="{height - _MARGIN:.0f}" stroke="#888" stroke-opacity="0.3"/>'
            f'<text x="{x:.1f}" y="{_MARGIN + 10}" text-anchor="{anchor}" fill="currentColor" '
            f'font-size="11">{escape(format_duration(at))}</text>'
        )
    return "".join(out)
