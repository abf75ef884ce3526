"""The size plot of `bench pretrain`: tokens/s against model size for ours and the keras-hub peer, in
float32 and mixed_bfloat16, one point per bench JSON (runs with `--both-precisions`), never edited by hand.

    python -m bertbench.bench.plot results/bench/pretrain_{tiny,mini,small,medium}.json \\
        --out results/bench/pretrain_sizes.png
"""

import argparse
from pathlib import Path

from bertbench.files import read_json_utf8

STYLES = {"ours": ("tab:blue", "o"), "peer": ("tab:orange", "s")}
LINES = {"float32": "--", "mixed_bfloat16": "-"}


def size_series(results):
    """{model name (e.g. "ours_mixed_bfloat16"): [(million parameters, tokens/s, preset)]}, by size."""
    series = {}
    for result in results:
        for name, figures in result["models"].items():
            point = (figures["parameters"] / 1e6, figures["tokens_per_s"], result["options"]["model"])
            series.setdefault(name, []).append(point)
    return {name: sorted(points) for name, points in sorted(series.items())}


def plot_sizes(results, out):
    """Write the plot of `results` (bench pretrain JSON dicts) to `out` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in size_series(results).items():
        who, precision = name.split("_", 1)
        color, marker = STYLES.get(who, ("0.4", "x"))
        ax.plot([p[0] for p in points], [p[1] for p in points], LINES.get(precision, ":"), color=color,
                marker=marker, label=f"{who}, {precision}")
    for size, _, preset in next(iter(size_series(results).values()), []):
        ax.annotate(preset, (size, 0), xycoords=("data", "axes fraction"), xytext=(0, 4),
                    textcoords="offset points", ha="center", fontsize=8, color="0.4")
    machine = results[0]["machine"] if results else {}
    ax.set(xscale="log", yscale="log", xlabel="parameters (millions)", ylabel="training tokens/s (seq 128)",
           title=f"bench pretrain: {machine.get('cpu_model', '?')}, {machine.get('cpu_cores', '?')} cores")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, metadata={"Software": None})  # no version stamp: same JSON, same bytes
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description="tokens/s vs model size from `bench pretrain` JSON files")
    parser.add_argument("results", nargs="+", help="bench pretrain --json files (one per model size)")
    parser.add_argument("--out", required=True, help="PNG to write")
    args = parser.parse_args(argv)
    plot_sizes([read_json_utf8(path) for path in args.results], args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
