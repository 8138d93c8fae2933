"""The protocol between the applications and the commands: ``Task``, typed ``Settings`` with
named recipes, and search results (genotype and/or learned hyper-parameters).

Applications (``restoration/*``, ``nas/classification``) implement it; the commands drive it.
It imports ``bilevel``, ``nas.genotype`` and ``datasets``, never an application.
"""
from tasks.base import SearchSetup, Task, TrainGroup, TrainSetup
from tasks.results import SearchResult, load_hparams, save_hparams
from tasks.settings import Settings, SettingsError

__all__ = ["SearchResult", "SearchSetup", "Settings", "SettingsError", "Task", "TrainGroup", "TrainSetup",
           "load_hparams", "save_hparams"]
