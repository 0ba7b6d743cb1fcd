"""Pictures of a run, drawn from its history by one pure model and two renderers.

:func:`~treadle.core.visual.steps.fold` turns a history into steps;
:func:`~treadle.core.visual.graph.build_graph` and
:func:`~treadle.core.visual.timeline.build_timeline` arrange them;
:mod:`~treadle.core.visual.svg` (the dashboard, ``--format svg``) and
:mod:`~treadle.core.visual.mermaid` (the command line) draw them. The dashboard and the
command line therefore show the same thing.
"""

from __future__ import annotations

from treadle.core.visual.graph import Graph, Node, Stage, build_graph, format_duration
from treadle.core.visual.mermaid import render_mermaid
from treadle.core.visual.steps import Outcome, Step, StepKind, Steps, fold
from treadle.core.visual.svg import render_graph_svg, render_timeline_svg
from treadle.core.visual.timeline import Bar, Timeline, build_timeline

__all__ = [
    "Bar",
    "Graph",
    "Node",
    "Outcome",
    "Stage",
    "Step",
    "StepKind",
    "Steps",
    "Timeline",
    "build_graph",
    "build_timeline",
    "fold",
    "format_duration",
    "render_graph_svg",
    "render_mermaid",
    "render_timeline_svg",
]
