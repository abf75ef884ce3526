"""Plots from tables built of hand-made records: cells.png (every experiment) and the steps sweep with
interval bands; valid, non-empty PNGs, rebuilt byte for byte from the same records."""

import dataclasses

import pytest

from bertbench.evaluation import stats
from bertbench.experiments.schema import load_experiment
from bertbench.results.plots import heldout_curves, plot_cells, plot_sweep, sweep_lines
from bertbench.results.tables import build_table

PNG = b"\x89PNG\r\n\x1a\n"


def ft(variant, seed, value, experiment="ablation_nsp", column="MNLI-m", **extra):
    return {"kind": "finetune", "experiment": experiment, "variant": variant, "column": column, "seed": seed,
            "status": "ok", "grid": {}, "main_metric": {"value": value}, "baselines": {"majority": 52.0}, **extra}


def test_cells_png(tmp_path):
    exp = load_experiment("ablation_nsp")
    exp = dataclasses.replace(exp, columns=exp.columns[:2])
    recs = [ft(v, s, 60.0 + 2 * i + s, column=c) for i, v in enumerate(("bert", "no_nsp", "ltr_no_nsp"))
            for s in range(3) for c in ("MNLI-m", "QNLI")]
    frame = build_table(recs, exp, [])
    path = plot_cells(frame, exp, tmp_path / "cells.png")
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 5000
    assert plot_cells(build_table(recs, exp, []), exp, tmp_path / "again.png").read_bytes() == data
    assert plot_cells(build_table([], exp, []), exp, tmp_path / "empty.png") is None
    assert not (tmp_path / "empty.png").exists()


def test_steps_sweep_with_bands(tmp_path):
    exp = load_experiment("ablation_steps")
    recs = [ft(f"{base}@{k}", s, 50.0 + k / 10 + s + (base == "mlm"), experiment="ablation_steps",
               base_variant=base, sweep_value=k) for base in ("mlm", "ltr") for k in (50, 100) for s in range(3)]
    frame = build_table(recs, exp, [])
    lines = sweep_lines(frame)
    low, high = stats.bootstrap_interval([56.0, 57.0, 58.0], seed=0)
    assert lines["MNLI-m"]["mlm"][0] == (50, pytest.approx(57.0), low, high)
    assert [point[0] for point in lines["MNLI-m"]["ltr"]] == [50, 100]
    assert plot_sweep(frame, exp, tmp_path / "steps.png").read_bytes()[:8] == PNG


def test_steps_png_with_the_no_pretraining_row_and_the_heldout_curve(tmp_path):
    exp = load_experiment("ablation_steps")
    recs = [ft(f"mlm@{k}", s, 50.0 + k / 10 + s, experiment="ablation_steps", base_variant="mlm", sweep_value=k)
            for k in (50, 100) for s in range(3)] + [ft("no_pretraining", s, 49.0 + s, experiment="ablation_steps")
                                                     for s in range(3)]
    pretrain = {"kind": "pretrain", "variants": ["mlm@50", "mlm@100"], "metrics": {
        "steps": 100, "initial_heldout.lm_accuracy": 0.001, "heldout.lm_accuracy": 0.12,
        "heldout_at_exports.50.lm_accuracy": 0.08, "heldout_at_exports.50.lm_loss": 7.0}}
    other = {"kind": "pretrain", "variants": ["somewhere_else"], "metrics": {"steps": 9, "heldout.lm_accuracy": 0.5}}
    assert heldout_curves([pretrain, other], exp) == {"mlm": [(0, 0.1), (50, 8.0), (100, 12.0)]}
    frame = build_table(recs, exp, [])
    assert set(sweep_lines(frame)["MNLI-m"]) == {"mlm"}  # the no-pretraining row: a flat line, not a sweep line
    with_curve = plot_sweep(frame, exp, tmp_path / "a.png", [pretrain]).read_bytes()
    without = plot_sweep(frame, exp, tmp_path / "b.png").read_bytes()
    assert with_curve[:8] == PNG and with_curve != without


@pytest.mark.parametrize("xs, scale", [([1000, 2500, 5000, 10000, 20000], "log"), ([50, 100, 200, 300], "linear"),
                                       ([0, 1000, 20000], "symlog"), ([0, 50, 300], "linear")])
def test_sweep_axis_is_logarithmic_when_the_sweep_spans_10x(xs, scale):
    from bertbench.results.plots import _pyplot, _sweep_axis

    plt = _pyplot()
    fig, ax = plt.subplots()
    _sweep_axis(ax, xs)
    assert ax.get_xscale() == scale
    plt.close(fig)


def test_cells_png_wraps_a_long_row_label(tmp_path):
    """A reference row's label (an external checkpoint's name and description) once pushed the axes off a
    one-column figure (matplotlib: 'Tight layout not applied'); it now wraps and the figure widens."""
    import warnings

    exp = load_experiment("ablation_nsp")
    long_row = "Reference: all-MiniLM-L6-v2 (a distilled sentence encoder, not a BERT pretraining of ours)"
    variants = [dataclasses.replace(exp.variants[0], row=long_row), *exp.variants[1:]]
    exp = dataclasses.replace(exp, columns=exp.columns[3:4], variants=variants)
    recs = [ft(v.name, s, 60.0 + s, column=exp.columns[0].name) for v in variants[:2] for s in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = plot_cells(build_table(recs, exp, []), exp, tmp_path / "cells.png").read_bytes()
    assert data[:8] == PNG
