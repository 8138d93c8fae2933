"""The few-shot classification application (``--task fewshot``): N-way K-shot episodes for MAML and friends.

``fewshot.synthetic`` generates the embedded glyph classes, ``fewshot.data`` reads Omniglot and
miniImageNet folders in place (``load_classes``), ``fewshot.episodes`` draws the episodes
(``EpisodeSet``) and the flat labelled set of a baseline (``LabelledImages``), ``fewshot.model`` is
MAML's Conv4 and its adaptation, ``fewshot.settings`` the recipes, ``fewshot.task`` the ``Task``.
Nothing runs at import time.
"""
