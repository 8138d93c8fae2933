"""plot_genotype writes a PNG, or returns False without raising or writing."""

import os

import torch

from nas.genotype import DARTS_V2, derive_chain
from nas.plot import plot_genotype

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_darts_v2_and_chain(tmp_path):
    path = tmp_path / "genotype.png"
    assert plot_genotype(DARTS_V2, path) is True
    assert path.read_bytes()[:8] == PNG_MAGIC
    chain = derive_chain("ruas", {"iem": torch.randn(3, 2), "nrm": torch.randn(7, 2)},
                         ["conv_3x3", "skip_connect"], {"iem": [0, 1, 2], "nrm": [0, 0, 2, 2, 4, 4, 6]},
                         concat={"iem": [3], "nrm": [1, 3, 5, 7]})
    chain_path = tmp_path / "chain.png"
    assert plot_genotype(chain, chain_path) is True
    assert chain_path.read_bytes()[:8] == PNG_MAGIC
    assert sorted(os.listdir(tmp_path)) == ["chain.png", "genotype.png"]


def test_plot_failure_returns_false_and_writes_nothing(tmp_path):
    assert plot_genotype(DARTS_V2, tmp_path / "missing_dir" / "g.png") is False
    assert plot_genotype(None, tmp_path / "g.png") is False  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


def test_edge_labels_of_darts_v2_do_not_overlap_and_cells_say_what_they_are():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from nas.plot import _draw_cell, _frame, cell_title

    for cell in ("normal", "reduce"):
        fig = Figure(figsize=(8, 3.4))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        _frame(ax, cell, DARTS_V2.cells[cell], DARTS_V2.concat[cell], True)
        _draw_cell(ax, DARTS_V2.cells[cell], DARTS_V2.concat[cell], True)
        renderer = fig.canvas.get_renderer()
        boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_fontsize() == 7]  # the op labels
        assert len(boxes) == 8
        for i, a in enumerate(boxes):
            for b in boxes[:i]:
                assert not a.overlaps(b), (cell, a, b)
    assert cell_title("ruas", "iem", {"iem": "illumination estimation"}) == "iem cell: illumination estimation"
    assert cell_title("derain", "cell") == "derain: cell" and cell_title("ruas", "nrm") == "ruas: nrm cell"


def test_graphviz_draws_when_it_and_dot_are_installed(tmp_path, monkeypatch):
    """The graphviz path, with a stand-in module (graphviz may not be installed here)."""
    import nas.plot as plot

    drawn = {}

    class Digraph:
        def __init__(self, **kw):
            self.lines = []

        def subgraph(self, name):
            outer = self

            class Cluster:
                def __enter__(self):
                    return self

                def __exit__(self, *exc):
                    return False

                def attr(self, **kw):
                    outer.lines.append(("title", kw["label"]))

                def node(self, key, label, **kw):
                    outer.lines.append(("node", label))

                def edge(self, a, b, label=None, **kw):
                    outer.lines.append(("edge", label))
            return Cluster()

        def pipe(self, format):
            drawn["lines"] = self.lines
            return PNG_MAGIC + b"fake"

    class Graphviz:
        pass

    Graphviz.Digraph = Digraph
    monkeypatch.setattr(plot, "_graphviz", lambda: Graphviz)
    assert plot_genotype(DARTS_V2, tmp_path / "g.png", titles={"normal": "keeps the resolution"}) is True
    assert (tmp_path / "g.png").read_bytes() == PNG_MAGIC + b"fake"
    assert ("title", "normal cell: keeps the resolution") in drawn["lines"]
    assert sum(1 for kind, label in drawn["lines"] if kind == "edge" and label) == 16  # 8 ops per cell
    monkeypatch.setattr(plot, "_graphviz", lambda: None)  # not installed: matplotlib draws
    assert plot_genotype(DARTS_V2, tmp_path / "m.png") is True and (tmp_path / "m.png").stat().st_size > 1000


def test_nodes_are_numbered_as_in_genotype_json():
    """Node j of the picture is node j of genotype.json: the genes' inputs and the concat list."""
    from nas.plot import _layout

    for cell in ("normal", "reduce"):
        genes, concat = DARTS_V2.cells[cell], DARTS_V2.concat[cell]
        labels, _, edges, outs = _layout(genes, concat, True)
        assert labels[:2] == ["0: $c_{k-2}$", "1: $c_{k-1}$"] and labels[2:6] == ["2", "3", "4", "5"]
        assert [labels[src].split(":")[0] for src, _, _ in edges] == [str(src) for _, src in genes]
        assert [labels[j] for j in outs] == [str(j) for j in concat] == ["2", "3", "4", "5"]
    labels, _, edges, _ = _layout((("conv_3x3", 0), ("skip_connect", 1)), (2,), False)
    assert labels == ["0: in", "1", "2", "out"] and [(s, d) for s, d, _ in edges] == [(0, 1), (1, 2)]
