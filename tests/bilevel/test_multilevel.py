"""Three levels against a closed form; two levels against ``hypergradient``; the call's contract."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
import torch

import bilevel
from bilevel import Level, multilevel_hypergradient
from tests.toys import quadratic, rel_err

DT = torch.float64


@dataclass
class ThreeLevels:
    """``z`` (bottom) minimises ``0.5 z'Az - z'(By + Cx)``: ``z* = A^-1 (By + Cx)``;
    ``y`` (middle) minimises ``0.5 y'Dy - y'Ex + 0.5||z*(x, y) - t||^2``;
    top ``F = 0.5||y* - a||^2 + 0.5||z* - b||^2 + 0.5 x'x``."""

    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    D: torch.Tensor
    E: torch.Tensor
    t: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    z: torch.Tensor

    def levels(self) -> list[Level]:
        A, B, C, D, E, t, a, b = self.A, self.B, self.C, self.D, self.E, self.t, self.a, self.b
        top = lambda v, _: 0.5 * ((v["y"] - a) ** 2).sum() + 0.5 * ((v["z"] - b) ** 2).sum() + 0.5 * v["x"] @ v["x"]
        middle = lambda v, _: 0.5 * v["y"] @ D @ v["y"] - v["y"] @ E @ v["x"] + 0.5 * ((v["z"] - t) ** 2).sum()
        bottom = lambda v, _: 0.5 * v["z"] @ A @ v["z"] - v["z"] @ (B @ v["y"] + C @ v["x"])
        return [Level({"x": self.x}, top), Level({"y": self.y}, middle), Level({"z": self.z}, bottom)]

    def solution(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(y*, z*, dF/dx)``: ``P = A^-1 B``, ``Q = A^-1 C``; the middle's reduced gradient
        ``Dy - Ex + P'(Py + Qx - t) = 0`` gives ``y* = M^-1 ((E - P'Q) x + P't)``, ``M = D + P'P``,
        so ``dy*/dx = Y = M^-1 (E - P'Q)``, ``dz*/dx = PY + Q`` and
        ``dF/dx = x + Y'(y* - a) + (PY + Q)'(z* - b)``."""
        x = self.x.detach()
        P, Q = torch.linalg.solve(self.A, self.B), torch.linalg.solve(self.A, self.C)
        M = self.D + P.T @ P
        Y = torch.linalg.solve(M, self.E - P.T @ Q)
        ys = torch.linalg.solve(M, (self.E - P.T @ Q) @ x + P.T @ self.t)
        zs = P @ ys + Q @ x
        return ys, zs, x + Y.T @ (ys - self.a) + (P @ Y + Q).T @ (zs - self.b)

    def move_to_solution(self) -> None:
        ys, zs, _ = self.solution()
        with torch.no_grad():
            self.y.copy_(ys)
            self.z.copy_(zs)


def _spd(n: int, g: torch.Generator) -> torch.Tensor:
    """Symmetric with eigenvalues in about [1, 1.6]: plain steps of size 0.5 contract fast."""
    Q = torch.randn(n, n, generator=g, dtype=DT)
    return torch.eye(n, dtype=DT) + 0.3 * (Q @ Q.T) / n


def three_levels(seed: int = 0, nx: int = 2, ny: int = 3, nz: int = 4) -> ThreeLevels:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=1.0: scale * torch.randn(*s, generator=g, dtype=DT)
    return ThreeLevels(A=_spd(nz, g), B=r(nz, ny, scale=0.3), C=r(nz, nx, scale=0.5), D=_spd(ny, g),
                       E=r(ny, nx), t=r(nz), a=r(ny), b=r(nz), x=r(nx).requires_grad_(True),
                       y=r(ny).requires_grad_(True), z=r(nz).requires_grad_(True))


def test_cg_matches_closed_form_at_the_solution():
    p = three_levels()
    p.move_to_solution()
    g = multilevel_hypergradient(p.levels(), "cg", iters=20)
    assert rel_err(g["x"], p.solution()[2]) < 1e-10
    assert g.diagnostics["method"] == "cg" and g.diagnostics["residual"] < 1e-10


def test_cg_solving_first_matches_closed_form():
    p = three_levels(seed=1)
    g = multilevel_hypergradient(p.levels(), "cg", steps=50, lr=0.5)
    assert rel_err(g["x"], p.solution()[2]) < 1e-9


def test_cg_without_the_middle_curvature_through_z_would_be_wrong():
    """The closed form's ``P'P`` term (the middle level's dependence through ``z*``) matters here."""
    p = three_levels(seed=2)
    p.move_to_solution()
    x = p.x.detach()
    Y_without = torch.linalg.solve(p.D, p.E)  # ignoring z* in the middle level
    wrong = x + Y_without.T @ (p.solution()[0] - p.a)
    g = multilevel_hypergradient(p.levels(), "cg")
    assert rel_err(g["x"], wrong) > 1e-2


def test_rad_converges_to_closed_form():
    p = three_levels(seed=3)
    exact = p.solution()[2]
    errors = [rel_err(multilevel_hypergradient(p.levels(), "rad", steps=s, lr=0.5)["x"], exact) for s in (3, 6, 12, 25)]
    assert all(later < earlier for earlier, later in itertools.pairwise(errors)), errors
    assert errors[-1] < 1e-6, errors


def test_rad_per_level_options():
    p = three_levels(seed=4)
    a = multilevel_hypergradient(p.levels(), "rad", steps=[4, 6], lr=[0.5, 0.4])
    b = multilevel_hypergradient(p.levels(), "rad", steps=[4, 6], lr=[0.5, 0.5])
    assert a.diagnostics["steps"] == [4, 6] and a.diagnostics["lr"] == [0.5, 0.4]
    assert rel_err(a["x"], b["x"]) > 1e-6


def nonlinear_levels(seed: int = 5) -> list[Level]:
    """Strongly convex levels whose best responses are nonlinear (curvature of ``z*`` counts)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=1.0: scale * torch.randn(*s, generator=g, dtype=DT)
    B, C, E, t = r(3, 2, scale=0.5), r(3, 2, scale=0.5), r(2, 2), r(3)
    x, y, z = r(2).requires_grad_(True), r(2).requires_grad_(True), r(3).requires_grad_(True)
    top = lambda v, _: (torch.sin(v["y"]).sum() + ((v["z"] - 0.5) ** 2 * v["x"].sum()).sum() + 0.5 * v["x"] @ v["x"])
    middle = lambda v, _: (0.5 * (v["y"] ** 2).sum() + 0.05 * (v["y"] ** 4).sum() - v["y"] @ E @ torch.tanh(v["x"])
                           + 0.5 * ((v["z"] ** 2 - t) ** 2).sum() * 0.1)
    bottom = lambda v, _: (0.5 * (v["z"] ** 2).sum() + 0.025 * (v["z"] ** 4).sum()
                           - v["z"] @ torch.tanh(B @ v["y"] + C @ v["x"]))
    return [Level({"x": x}, top), Level({"y": y}, middle), Level({"z": z}, bottom)]


def test_cg_equals_rad_on_nonlinear_three_levels():
    """Both converge to the exact total derivative; their agreement checks the curvature terms."""
    levels = nonlinear_levels()
    rad = multilevel_hypergradient(levels, "rad", steps=30, lr=0.5)
    cg = multilevel_hypergradient(levels, "cg", steps=30, lr=0.5)
    short = multilevel_hypergradient(levels, "rad", steps=5, lr=0.5)
    assert rel_err(cg["x"], rad["x"]) < 1e-8  # 5e-10 here; a finite difference agrees with cg to 3e-11
    assert rel_err(short["x"], rad["x"]) > 1e-6  # the check is not vacuous


@pytest.mark.parametrize("method,options", [("rad", {"steps": 7, "lr": 0.2}), ("cg", {"iters": 10})])
def test_two_levels_equal_hypergradient(method, options):
    q = quadratic(seed=1)
    p = q.problem()
    expected = bilevel.hypergradient(p, method, None, None, **options)
    levels = [Level({"x": q.x}, lambda v, b: p.upper_loss({"y": v["y"]}, {"x": v["x"]}, b)),
              Level({"y": q.y}, lambda v, b: p.lower_loss({"y": v["y"]}, {"x": v["x"]}, b))]
    got = multilevel_hypergradient(levels, method, **options)
    assert set(got) == {"x"} and got["x"].shape == q.x.shape
    assert rel_err(got["x"], expected["x"]) < 1e-12


@pytest.mark.parametrize("method", ["rad", "cg"])
def test_variables_unchanged(method):
    p = three_levels(seed=6)
    before = [t.detach().clone() for t in (p.x, p.y, p.z)]
    multilevel_hypergradient(p.levels(), method, batches=[None, None, None], steps=3, lr=0.5)
    for t, b in zip((p.x, p.y, p.z), before):
        assert torch.equal(t.detach(), b) and t.grad is None


def test_errors():
    p = three_levels()
    levels = p.levels()
    with pytest.raises(ValueError, match="at least 2 levels"):
        multilevel_hypergradient(levels[:1], "rad")
    with pytest.raises(ValueError, match="more than one level"):
        multilevel_hypergradient([levels[0], Level({"x": p.y}, levels[1].loss)], "rad")
    with pytest.raises(ValueError, match="unknown multilevel method"):
        multilevel_hypergradient(levels, "nope")
    with pytest.raises(ValueError, match="no option 'iters'"):
        multilevel_hypergradient(levels, "rad", iters=3)
    with pytest.raises(ValueError, match="steps must be an integer > 0"):
        multilevel_hypergradient(levels, "rad", steps=0)
    with pytest.raises(ValueError, match="lr must be a number > 0"):
        multilevel_hypergradient(levels, "cg", lr=-1.0)
    with pytest.raises(ValueError, match="one value per level"):
        multilevel_hypergradient(levels, "rad", steps=[3, 3, 3])
    with pytest.raises(ValueError, match="iters must be"):
        multilevel_hypergradient(levels, "cg", iters=0)
    with pytest.raises(ValueError, match="one entry per level"):
        multilevel_hypergradient(levels, "cg", batches=[None])
