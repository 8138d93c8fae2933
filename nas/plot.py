"""Draw a genotype to a PNG with matplotlib (Agg canvas, no pyplot global state).

Each cell is one panel: nodes are boxes, edges are arrows labelled with their op, the
concatenated nodes feed an output box. DAG cells (space ``"darts"``) show the inputs
``c_{k-2}``, ``c_{k-1}`` and nodes 0..n-1; chain cells show ``in`` and nodes 1..n.
"""

from __future__ import annotations

import io
import logging
import os

from datasets.atomic import atomic_write_bytes
from nas.genotype import Genotype

__all__ = ["plot_genotype"]

log = logging.getLogger(__name__)


def _layout(genes: tuple[tuple[str, int], ...], concat: tuple[int, ...], dag: bool) -> tuple:
    """Node labels, positions, edges ``(src, dst, op)`` and the output's sources."""
    if dag:
        n_in, dst_of = 2, [2 + k // 2 for k in range(len(genes))]
        labels = ["$c_{k-2}$", "$c_{k-1}$"] + [str(i) for i in range(len(genes) // 2)]
    else:
        n_in, dst_of = 1, [k + 1 for k in range(len(genes))]
        labels = ["in"] + [str(i + 1) for i in range(len(genes))]
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


def _draw_cell(ax, name: str, genes, concat, dag: bool) -> None:  # type: ignore[no-untyped-def]
    labels, pos, edges, outs = _layout(genes, concat, dag)
    box = dict(boxstyle="round,pad=0.3", fc="#dbe9f6", ec="#1f4e79")
    for j, label in enumerate(labels):
        fc = "#f6e3db" if label == "out" else ("#e8e8e8" if j < (2 if dag else 1) else box["fc"])
        ax.text(*pos[j], label, ha="center", va="center", fontsize=9, zorder=3, bbox={**box, "fc": fc})
    arrow = dict(arrowstyle="-|>", color="#444444", shrinkA=12, shrinkB=12, lw=0.9)
    for k, (src, dst, op) in enumerate(edges):
        rad = 0.25 if k % 2 else -0.25
        ax.annotate("", xy=pos[dst], xytext=pos[src], zorder=1,
                    arrowprops={**arrow, "connectionstyle": f"arc3,rad={rad}"})
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        # Shift the label toward the arc's bulge (perpendicular to the chord).
        mx, my = mx + rad * (y1 - y0) / 2, my - rad * (x1 - x0) / 2
        ax.text(mx, my, op, ha="center", va="center", fontsize=7, color="#7a1f1f", zorder=2,
                bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))
    out = len(labels) - 1
    for j in outs:
        ax.annotate("", xy=pos[out], xytext=pos[j], zorder=1,
                    arrowprops={**arrow, "color": "#999999", "linestyle": "--"})
    xs = [p[0] for p in pos.values()]
    ax.set_xlim(min(xs) - 0.7, max(xs) + 0.7)
    ax.set_ylim(-2.0, 2.0)
    ax.set_title(name)
    ax.axis("off")


def plot_genotype(genotype: Genotype, path: str | os.PathLike[str], dag: bool | None = None) -> bool:
    """Draw every cell of ``genotype`` into one PNG at ``path``; return whether it was written.

    ``dag``: DARTS-style numbering (two cell inputs, two genes per node); default: the space
    is ``"darts"``. Never raises: on any failure nothing is written, a warning is logged and
    ``False`` returned.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        dag = genotype.space == "darts" if dag is None else dag
        names = list(genotype.cells)
        widths = [max(4.0, 1.3 * (len(genotype.cells[n]) // (2 if dag else 1) + 3)) for n in names]
        fig = Figure(figsize=(max(widths), 3.2 * len(names)))
        FigureCanvasAgg(fig)
        for r, name in enumerate(names):
            ax = fig.add_subplot(len(names), 1, r + 1)
            _draw_cell(ax, f"{genotype.space}: {name}", genotype.cells[name], genotype.concat[name], dag)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        atomic_write_bytes(path, buf.getvalue())
        return True
    except Exception as exc:  # drawing is a convenience; never fail the caller
        log.warning("could not draw genotype to %s: %s: %s", path, exc.__class__.__name__, exc)
        return False
