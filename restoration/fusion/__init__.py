"""Infrared/visible image fusion after HAF (ACM MM 2021) and TIMFusion (TPAMI 2023): the field's
metrics (``metrics``), unsupervised losses (``losses``), the multi-scale search space (``cells``,
``model``), op latencies (``latency``), data (``data``) and evaluation helpers (``evaluation``).

Sub-modules are imported where used, so importing this package stays light.
"""
