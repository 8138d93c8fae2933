"""Draw a genotype to a PNG: one panel per cell, titled with what the cell is.

Nodes are boxes, edges arrows labelled with their op, the concatenated nodes feed an output box.
Nodes are numbered as in ``genotype.json`` (``nas.genotype``): DAG cells (space ``"darts"``) show the
inputs ``0: c_{k-2}``, ``1: c_{k-1}`` and the intermediate nodes 2..n+1; chain cells show ``0: in``
and nodes 1..n.

With the ``graphviz`` Python package and its ``dot`` program both installed, graphviz lays the cells
out (as DARTS's ``visualize.py``), which routes edges and their labels apart. Otherwise matplotlib
draws them (Agg canvas, no pyplot global state) and places each op label ON its edge, at the first
of several positions along the curve (middle first, then staggered towards the ends) where the
label's rendered box overlaps no node and no label placed before it.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
from typing import Any, Mapping

from datasets.atomic import atomic_write_bytes
from nas.genotype import Genotype

__all__ = ["cell_title", "plot_genotype"]

log = logging.getLogger(__name__)

#: Positions along an edge (0: source, 1: target) tried for its label, in order.
LABEL_POSITIONS = (0.5, 0.35, 0.65, 0.25, 0.75, 0.42, 0.58, 0.18, 0.82)


def cell_title(space: str, name: str, titles: Mapping[str, str] | None = None) -> str:
    """``"<name> cell: <what it is>"`` from ``titles`` (a task's ``cell_titles``), else ``"<space>: <name> cell"``."""
    if titles and name in titles:
        return f"{name} cell: {titles[name]}"
    return f"{space}: {name}" + ("" if "cell" in name else " cell")


def _layout(genes: tuple[tuple[str, int], ...], concat: tuple[int, ...], dag: bool) -> tuple:
    """Node labels, positions, edges ``(src, dst, op)`` and the output's sources."""
    if dag:
        n_in, dst_of = 2, [2 + k // 2 for k in range(len(genes))]
        labels = ["0: $c_{k-2}$", "1: $c_{k-1}$"] + [str(i + 2) for i in range(len(genes) // 2)]
    else:
        n_in, dst_of = 1, [k + 1 for k in range(len(genes))]
        labels = ["0: in"] + [str(i + 1) for i in range(len(genes))]
    n_nodes = len(labels)
    pos = {}
    for j in range(n_nodes):
        if j < n_in:
            pos[j] = (0.0, float(j) * 2.0 - (n_in - 1))
        else:
            pos[j] = (float(j - n_in + 1), 0.9 if (j - n_in) % 2 else -0.9)
    pos[n_nodes] = (float(n_nodes - n_in + 1), 0.0)
    labels.append("out")
    edges = [(src, dst, op) for (op, src), dst in zip(genes, dst_of)]
    return labels, pos, edges, [j for j in concat if j < n_nodes]


def _on_arc(ax: Any, p0: tuple[float, float], p1: tuple[float, float], rad: float, t: float) -> tuple[float, float]:
    """The point at ``t`` of matplotlib's ``arc3,rad=rad`` curve from ``p0`` to ``p1`` (a quadratic
    Bezier built in display coordinates), in data coordinates."""
    (x0, y0), (x1, y1) = ax.transData.transform([p0, p1])
    cx, cy = (x0 + x1) / 2 + rad * (y1 - y0), (y0 + y1) / 2 - rad * (x1 - x0)
    u = 1.0 - t
    x = u * u * x0 + 2 * u * t * cx + t * t * x1
    y = u * u * y0 + 2 * u * t * cy + t * t * y1
    return tuple(ax.transData.inverted().transform((x, y)))  # type: ignore[return-value]


def _overlap(a: Any, b: Any) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _frame(ax: Any, title: str, genes: Any, concat: Any, dag: bool) -> None:
    """Limits, title, no axes: set before the figure's layout is fixed."""
    _, pos, _, _ = _layout(genes, concat, dag)
    xs = [p[0] for p in pos.values()]
    ax.set_xlim(min(xs) - 0.7, max(xs) + 0.7)
    ax.set_ylim(-2.0, 2.0)
    ax.set_title(title)
    ax.axis("off")


def _draw_cell(ax: Any, genes: Any, concat: Any, dag: bool) -> None:
    labels, pos, edges, outs = _layout(genes, concat, dag)
    renderer = ax.figure.canvas.get_renderer()
    box = dict(boxstyle="round,pad=0.3", fc="#dbe9f6", ec="#1f4e79")
    taken = []  # rendered boxes of the nodes and the labels placed so far
    for j, label in enumerate(labels):
        fc = "#f6e3db" if label == "out" else ("#e8e8e8" if j < (2 if dag else 1) else box["fc"])
        node = ax.text(*pos[j], label, ha="center", va="center", fontsize=9, zorder=3, bbox={**box, "fc": fc})
        taken.append(node.get_window_extent(renderer).expanded(1.1, 1.2))
    arrow = dict(arrowstyle="-|>", color="#444444", shrinkA=12, shrinkB=12, lw=0.9)
    out = len(labels) - 1
    for j in outs:
        ax.annotate("", xy=pos[out], xytext=pos[j], zorder=1,
                    arrowprops={**arrow, "color": "#999999", "linestyle": "--"})
    for k, (src, dst, op) in enumerate(edges):
        rad = 0.25 if k % 2 else -0.25
        ax.annotate("", xy=pos[dst], xytext=pos[src], zorder=1,
                    arrowprops={**arrow, "connectionstyle": f"arc3,rad={rad}"})
        text = ax.text(0, 0, op, ha="center", va="center", fontsize=7, color="#7a1f1f", zorder=2,
                       bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="#d9b3b3", lw=0.5, alpha=0.95))
        best = None
        for t in LABEL_POSITIONS:
            text.set_position(_on_arc(ax, pos[src], pos[dst], rad, t))
            extent = text.get_window_extent(renderer).expanded(1.25, 1.6)  # keep a visible gap
            clash = sum(_overlap(extent, other) for other in taken)
            if best is None or clash < best[0]:
                best = (clash, t, extent)
            if clash == 0:
                break
        assert best is not None
        text.set_position(_on_arc(ax, pos[src], pos[dst], rad, best[1]))
        taken.append(best[2])


def _matplotlib_png(genotype: Genotype, dag: bool, titles: Mapping[str, str] | None) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(genotype.cells)
    widths = [max(5.0, 1.6 * (len(genotype.cells[n]) // (2 if dag else 1) + 3)) for n in names]
    fig = Figure(figsize=(max(widths), 3.4 * len(names)))
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(len(names), 1, r + 1) for r in range(len(names))]
    for ax, name in zip(axes, names):
        _frame(ax, cell_title(genotype.space, name, titles), genotype.cells[name], genotype.concat[name], dag)
    fig.tight_layout(h_pad=2.0)  # final axes geometry before the labels are placed in display space
    for ax, name in zip(axes, names):
        _draw_cell(ax, genotype.cells[name], genotype.concat[name], dag)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _graphviz_png(graphviz: Any, genotype: Genotype, dag: bool, titles: Mapping[str, str] | None) -> bytes:
    """All cells as clusters of one graphviz ``Digraph`` (left to right), rendered by ``dot``."""
    g = graphviz.Digraph(format="png", graph_attr={"rankdir": "LR", "dpi": "100", "fontname": "helvetica"},
                         node_attr={"shape": "box", "style": "rounded,filled", "fillcolor": "#dbe9f6",
                                    "fontname": "helvetica", "fontsize": "12"},
                         edge_attr={"fontname": "helvetica", "fontsize": "10", "fontcolor": "#7a1f1f"})
    for name in genotype.cells:
        labels, _, edges, outs = _layout(genotype.cells[name], genotype.concat[name], dag)
        labels = [lab.replace("$c_{k-2}$", "c_{k-2}").replace("$c_{k-1}$", "c_{k-1}") for lab in labels]
        with g.subgraph(name=f"cluster_{name}") as c:
            c.attr(label=cell_title(genotype.space, name, titles), fontsize="14")
            ids = [f"{name}_{j}" for j in range(len(labels))]
            for j, label in enumerate(labels):
                fill = "#f6e3db" if label == "out" else ("#e8e8e8" if j < (2 if dag else 1) else "#dbe9f6")
                c.node(ids[j], label, fillcolor=fill)
            for src, dst, op in edges:
                c.edge(ids[src], ids[dst], label=op)
            for j in outs:
                c.edge(ids[j], ids[-1], style="dashed", color="#999999")
    return g.pipe(format="png")


def _graphviz() -> Any:
    """The ``graphviz`` module when it and the ``dot`` program are both installed, else None."""
    if shutil.which("dot") is None:
        return None
    try:
        import graphviz
    except ImportError:
        return None
    return graphviz


def plot_genotype(genotype: Genotype, path: str | os.PathLike[str], dag: bool | None = None,
                  titles: Mapping[str, str] | None = None) -> bool:
    """Draw every cell of ``genotype`` into one PNG at ``path``; return whether it was written.

    ``dag``: DARTS-style numbering (two cell inputs, two genes per node); default: the space
    is ``"darts"``. ``titles``: cell name -> what the cell is (a task's ``cell_titles``). Never
    raises: on any failure nothing is written, a warning is logged and ``False`` returned.
    """
    try:
        dag = genotype.space == "darts" if dag is None else dag
        graphviz = _graphviz()
        png = None
        if graphviz is not None:
            try:
                png = _graphviz_png(graphviz, genotype, dag, titles)
            except Exception as exc:  # a broken graphviz install: matplotlib still draws
                log.warning("graphviz could not draw the genotype (%s: %s); using matplotlib", type(exc).__name__, exc)
        atomic_write_bytes(path, png or _matplotlib_png(genotype, dag, titles))
        return True
    except Exception as exc:  # drawing is a convenience; never fail the caller
        log.warning("could not draw genotype to %s: %s: %s", path, exc.__class__.__name__, exc)
        return False
