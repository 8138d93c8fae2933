"""Infrared/visible image fusion after HAF (ACM MM 2021) and TIMFusion (TPAMI 2023): the field's
metrics (``metrics``, with ``metrics_vif``, ``metrics_qabf``, ``metrics_ssim``, and the published tables'
named conventions in ``metrics_conventions``), unsupervised losses
(``losses``), luma fusion with colour put back (``color``), the multi-scale search space
(``model``, ``genotype``, ``complexity``), op latencies (``latency``), task data (``data``),
evaluation helpers (``evaluation``), and the ``Task`` of the commands (``task``, ``settings``).

Sub-modules are imported where used, so importing this package stays light.
"""
