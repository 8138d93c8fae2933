"""How a network runs, shared by the commands, the benchmarks and the examples: precision (AMP and
its scaler), memory layout, ``torch.compile`` and CUDA graphs (``Runner``), CPU threads, and the
``name=value`` options of a hypergradient method. Imports ``bilevel`` only."""
