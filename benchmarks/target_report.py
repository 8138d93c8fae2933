"""The tables of ``time_to_target.py``: one loop's result, each library's fastest setting at a
target, the ratio to the fastest peer (exact, or a bound where a loop stopped short), the verdicts."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from benchmarks import harness


@dataclass
class Result:
    """One (library, setting) loop. ``steps``/``cpu_s``/``wall_s``: at the target when ``reached``,
    else when the loop stopped; ``early_*``: the first iteration at the early target (nan if none)."""

    problem: str
    library: str
    setting: str
    method: str
    T: int
    K: int
    reached: bool = False
    steps: int = 0
    cpu_s: float = math.nan
    wall_s: float = math.nan
    early_steps: float = math.nan
    early_cpu_s: float = math.nan
    early_wall_s: float = math.nan
    peak_mem: float = math.nan
    final: float = math.nan
    note: str = ""
    trace: list = field(default_factory=list)


def _at(r: Result, early: bool) -> tuple[bool, float, float, float]:
    """(reached, cpu s, wall s, steps) of ``r`` at the early or the stated target; not reached:
    the time it ran (a lower bound on its time to target)."""
    if not early:
        return r.reached, r.cpu_s, r.wall_s, r.steps
    if not math.isnan(r.early_cpu_s):
        return True, r.early_cpu_s, r.early_wall_s, r.early_steps
    return False, r.cpu_s, r.wall_s, r.steps


def best_per_library(results: list[Result], early: bool = False) -> list[dict]:
    """Per (problem, library): the fastest setting at the target. A library none of whose settings
    reached it gets its lowest bound (``> t``: the shortest run among its settings). ``x_peer``:
    CPU time / the fastest peer's (a bound ``<``/``>`` where one side is a bound)."""
    rows: dict = {}
    for r in results:
        hit, cpu, wall, steps = _at(r, early)
        if math.isnan(cpu):
            continue
        key = (r.problem, r.library)
        cur = rows.get(key)
        rank = (not hit, cpu)
        if cur is None or rank < cur["rank"]:
            rows[key] = {"rank": rank, "problem": r.problem, "library": r.library, "setting": r.setting,
                         "reached": hit, "cpu_s": cpu, "wall_s": wall, "steps": steps,
                         "peak_mem": r.peak_mem, "note": r.note if not hit else ""}
    for r in results:  # libraries that ran nothing: their note
        rows.setdefault((r.problem, r.library), {"rank": (True, math.inf), "problem": r.problem, "library": r.library,
                                                 "setting": "-", "reached": False, "cpu_s": math.nan,
                                                 "wall_s": math.nan, "steps": 0, "peak_mem": math.nan, "note": r.note})
    out = list(rows.values())
    for row in out:
        row["x_peer"] = ratio(row, [p for p in out if p["problem"] == row["problem"] and p["library"] != "ours"
                                    and not math.isnan(p["cpu_s"])])
        del row["rank"]
    return out


def ratio(row: dict, peers: list[dict]) -> str:
    """``row``'s time over the fastest peer's, as text: exact, ``<`` (the peers' times are lower
    bounds: they did not reach the target), ``>`` (``row`` did not), or "-"."""
    if not peers or math.isnan(row["cpu_s"]):
        return "-"
    fastest = min(peers, key=lambda p: (p["cpu_s"], not p["reached"]))
    x = row["cpu_s"] / fastest["cpu_s"]
    if row["reached"] and fastest["reached"]:
        return f"{x:.2f}"
    if row["reached"]:
        return f"<{x:.2f}"
    return f">{x:.2f}" if fastest["reached"] else "-"


def table(rows: list[dict]) -> str:
    head = (f"{'problem':8} {'library':8} {'setting':40} {'cpu s':>8} {'wall s':>7} {'steps':>5} "
            f"{'peak mem':>8} {'x peer':>6}  note")
    lines = [head, "-" * len(head)]
    last = None
    for r in rows:
        if last is not None and r["problem"] != last:
            lines.append("")
        last = r["problem"]
        cpu = "-" if math.isnan(r["cpu_s"]) else (f"{r['cpu_s']:.3g}" if r["reached"] else f"> {r['cpu_s']:.3g}")
        wall = "-" if math.isnan(r["wall_s"]) else f"{r['wall_s']:.3g}"
        lines.append(f"{r['problem']:8} {r['library']:8} {r['setting']:40} {cpu:>8} {wall:>7} {int(r['steps']):5d} "
                     f"{harness._fmt(r['peak_mem'], 'mem'):>8} {r.get('x_peer', '-'):>6}  {r['note']}".rstrip())
    return "\n".join(lines)


def sweep_rows(results: list[Result]) -> list[dict]:
    """Every loop at the stated target, for the sweep table."""
    out = []
    for r in results:
        row = {k: getattr(r, k) for k in ("problem", "library", "setting", "reached", "cpu_s", "wall_s", "steps",
                                          "peak_mem", "note")}
        if not math.isnan(r.early_cpu_s):
            row["note"] = f"early target: {r.early_cpu_s:.3g} s, {int(r.early_steps)} it" + (
                f"; {r.note}" if r.note else "")
        out.append(row)
    return out


def verdicts(best: list[dict]) -> list[str]:
    out = []
    for key in dict.fromkeys(r["problem"] for r in best):
        o = next((r for r in best if r["problem"] == key and r["library"] == "ours"), None)
        peers = [r for r in best if r["problem"] == key and r["library"] != "ours" and not math.isnan(r["cpu_s"])]
        if o is None or not o["reached"]:
            out.append(f"{key}: ours did not reach the target")
            continue
        if not peers:
            out.append(f"{key}: no peer ran")
            continue
        x = o["x_peer"]
        hit = [p for p in peers if p["reached"]]
        first = min(hit, key=lambda p: p["cpu_s"]) if hit else None
        short = [p for p in peers if not p["reached"] and (first is None or p["cpu_s"] < first["cpu_s"])]
        what = [f"fastest peer {first['cpu_s']:.3g} s ({first['library']}: {first['setting']})"] if first else \
            ["no peer reached it"]
        if short:
            p = min(short, key=lambda q: q["cpu_s"])
            what.append(f"{p['library']} stopped short of it after {p['cpu_s']:.3g} s ({p['setting']})")
        met = float(x.lstrip("<")) <= 0.5
        out.append(f"{key}: ours {o['cpu_s']:.3g} s ({o['setting']}); {'; '.join(what)}: ratio {x} -> "
                   f"{'REACHED' if met else 'NOT reached'} (aim <= 0.5)")
    return out
