#!/usr/bin/env python3
"""Draws the benchmark's charts from the data bench/run.py writes.

    bench/.venv/bin/python bench/charts.py DATA.json OUT_DIR

bench/run.py runs it with matplotlib installed into bench/.venv (PyPI) and
OUT_DIR docs/perf. Writes, and prints the path of:

- requests.png: engine requests per scenario, dockmaster, Compose v2 and the
  engine floor side by side;
- ratios.png: dockmaster's wall time as a ratio to Compose v2 and to the floor,
  per scenario (idle, remote and busy engine), with 1.0 marked; no-ops only
  against Compose.
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"dockmaster": "#1f77b4", "compose": "#ff7f0e", "floor": "#7f7f7f"}
LABELS = {"dockmaster": "dockmaster", "compose": "Compose v2.40.3", "floor": "engine floor"}


def bars(ax, rows, series, value, width=0.27):
    xs = range(len(rows))
    for i, name in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * width
        vals = [value(r, name) for r in rows]
        pos = [x + offset for x in xs]
        drawn = ax.bar([p for p, v in zip(pos, vals) if v is not None], [v for v in vals if v is not None],
                       width, label=LABELS.get(name, name), color=COLOURS.get(name))
        ax.bar_label(drawn, fmt="%.3g", fontsize=7, padding=1)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([r["label"] for r in rows], rotation=30, ha="right", fontsize=8)


def main() -> int:
    data = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    subtitle = f"run {data['run']}, {data['date']}, {data['profile']} builds"

    rows = data["requests"]
    if rows:
        fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(rows) + 2), 4.5))
        series = [p for p in ("dockmaster", "compose", "floor") if any(p in r["peers"] for r in rows)]
        bars(ax, rows, series, lambda r, p: r["peers"].get(p))
        ax.set_ylabel("engine requests")
        ax.set_title(f"Engine requests per scenario\n{subtitle}", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / "requests.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        print(path)

    rows = data["ratios"]
    if rows:
        fig, ax = plt.subplots(figsize=(max(7, 0.9 * len(rows) + 2), 4.5))
        # A no-op against the floor (one list call) is not a useful ratio:
        # it would dwarf the others on the scale. Those bars are left out.
        bars(ax, rows, ["compose", "floor"],
             lambda r, p: None if p == "floor" and "no-op" in r["label"] else r.get(p), width=0.38)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_ylabel("dockmaster wall time / peer's (log scale; < 1 is faster)")
        ax.set_title(f"dockmaster / peer, median wall time per scenario (remote: +{data['latency_ms']:g} ms "
                     f"per request; busy: {data['load']} other containers)\n{subtitle}", fontsize=9)
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles, [f"dockmaster / {x}" for x in labels], fontsize=8)
        fig.tight_layout()
        path = out / "ratios.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
