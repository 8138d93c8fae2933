"""The protocol between the applications and the commands: ``Task`` and the records its methods
return, typed ``Settings`` with named recipes, search results (genotype and/or learned
hyper-parameters), the shared training pieces, and the lazy registry ``get_task(name)``.

Applications (``restoration/*``, ``classification``) implement it; the commands drive it. It imports
``bilevel``, ``nas.genotype`` and ``datasets``, never an application (the registry imports one when
asked for it by name).
"""
from tasks.base import Scoring, SearchData, SearchSetup, Task, TestData, TrainData, TrainGroup, TrainSetup
from tasks.registry import TASKS, TaskError, get_task, register, task_class
from tasks.results import SearchResult, load_hparams, save_hparams
from tasks.settings import Settings, SettingsError, TrainingSettings

__all__ = ["Scoring", "SearchData", "SearchResult", "SearchSetup", "Settings", "SettingsError", "TASKS", "Task",
           "TaskError", "TestData", "TrainData", "TrainGroup", "TrainSetup", "TrainingSettings", "get_task",
           "load_hparams", "register", "save_hparams", "task_class"]
