"""Options, names and inputs that are wrong get one clear error."""
import pytest
import torch

import bilevel
from tests.toys import quadratic


def test_unknown_option_names_the_valid_ones():
    q = quadratic()
    with pytest.raises(bilevel.OptionError, match="has no option 'iterations'.*iters, tol"):
        bilevel.hypergradient(q.problem(), "cg", None, None, iterations=3)


def test_unknown_method_lists_the_methods():
    with pytest.raises(KeyError, match="unknown hypergradient method 'dart'.*darts2"):
        bilevel.hypergradient(quadratic().problem(), "dart", None, None)


@pytest.mark.parametrize("method,options,match", [
    ("trad", dict(steps=3, truncate=5), "truncate"),
    ("rad", dict(steps=0), "steps"),
    ("rad", dict(steps=2.5), "integer"),
    ("darts2", dict(hvp="magic"), "hvp"),
    ("bda", dict(mu=1.5), "mu"),
    ("neumann", dict(alpha=-1.0), "alpha"),
    ("pbgd", dict(gamma=0.0), "gamma"),
    ("f2sa", dict(lam=5.0, lam_max=1.0), "lam_max"),
    ("meha", dict(p=-0.1), "p"),
    ("bvfim", dict(mu=0.0), "mu"),
    ("bome", dict(steps=1.5), "integer"),
    ("iaptt", dict(init_optimizer="lbfgs"), "init_optimizer"),
    ("ias", dict(scale="big"), "scale"),
])
def test_bad_values(method, options, match):
    with pytest.raises(bilevel.OptionError, match=match):
        bilevel.hypergradient(quadratic().problem(), method, None, None, **options)


def test_every_option_has_a_default():
    for name, cls in bilevel.METHODS.items():
        cls.Config()  # must build with no arguments


def test_non_leaf_variable_is_refused():
    base = torch.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"lower\['y'\] is not a leaf"):
        bilevel.BilevelProblem(lower={"y": base * 2}, upper={"x": torch.ones(2, requires_grad=True)},
                               lower_loss=lambda *a: 0, upper_loss=lambda *a: 0)


def test_integer_variable_and_name_clash_are_refused():
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(TypeError, match="floating point"):
        bilevel.BilevelProblem(lower={"y": torch.ones(2, dtype=torch.long)}, upper={"x": x},
                               lower_loss=lambda *a: 0, upper_loss=lambda *a: 0)
    with pytest.raises(ValueError, match="both lower and upper"):
        bilevel.BilevelProblem(lower={"x": torch.ones(2, requires_grad=True)}, upper={"x": x},
                               lower_loss=lambda *a: 0, upper_loss=lambda *a: 0)


def test_unsupported_lower_optimizer_is_a_clear_not_implemented():
    q = quadratic()
    rmsprop = torch.optim.RMSprop([q.y], lr=0.1)
    with pytest.raises(NotImplementedError, match="SGD, Adam and AdamW, not RMSprop"):
        bilevel.hypergradient(q.problem(), "rad", None, None, lower_optimizer=rmsprop)
