"""Gradient-based bilevel optimization on ``torch.func``: one problem, any hypergradient method.

    problem = BilevelProblem(lower=..., upper=..., lower_loss=f, upper_loss=F)
    grads = hypergradient(problem, "cg", lower_batch, upper_batch, iters=20)

``METHODS`` maps each method name to its class; ``METHODS[name].Config`` lists its options.
"""
from .base import Hypergradient, Method, OptionError
from .hypergradient import hypergradient, make_method
from .groups import Group, GroupedLoop, LowerLevel
from .loop import BilevelLoop, NonFiniteError
from .memory import saved_tensor_bytes
from .methods import METHODS
from .methods.meta import Tasks
from .multilevel import MULTILEVEL_METHODS, Level, multilevel_hypergradient
from .multilevel_loop import LoopLevel, MultilevelLoop
from .problem import BilevelProblem, call

__all__ = ["BilevelProblem", "BilevelLoop", "Group", "GroupedLoop", "LowerLevel", "Hypergradient", "Level", "LoopLevel", "METHODS", "MULTILEVEL_METHODS", "Method",
           "MultilevelLoop", "NonFiniteError",
           "OptionError", "Tasks", "call", "hypergradient", "make_method", "multilevel_hypergradient", "saved_tensor_bytes"]
