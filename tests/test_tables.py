"""Tables from hand-made records: layout, intervals, paired Δ with tests and Holm, collapsed runs, the
majority row, the grid point with the best mean, paper numbers, files rebuilt bit-identically."""

import dataclasses
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from bertbench.config import to_dict
from bertbench.errors import BertbenchError
from bertbench.evaluation import per_example, stats
from bertbench.experiments.plan import expand
from bertbench.experiments.schema import Column, load_experiment
from bertbench.results.cells import cell_values
from bertbench.results.formats import to_csv, to_latex, to_markdown
from bertbench.results.tables import build_table, current_records, load_paper_numbers, write_tables

PPL = Column("LM (ppl)", source="pretrain", metric="heldout.lm_perplexity", decimals=2)  # lower is better
REPO_RESULTS = Path(__file__).resolve().parents[1] / "results"


def ft(variant, seed, value, column="MNLI-m", task="rte", proxy_for="mnli", status="ok", experiment="ablation_nsp",
       grid=None, **extra):
    return {"kind": "finetune", "experiment": experiment, "variant": variant, "column": column, "seed": seed,
            "task": task, "proxy_for": proxy_for, "status": status, "grid": grid or {},
            "main_metric": {"name": "accuracy", "value": value, "higher_is_better": True}, **extra}


def pre(variants, ppl, size=(2, 128, 2), pretrain_seed=None):
    return {"kind": "pretrain", "experiment": "ablation_nsp", "variants": variants, "status": "ok",
            "metrics": {"heldout.lm_perplexity": ppl},
            "config": {"model": dict(zip(("num_layers", "hidden_dim", "num_heads"), size))},
            **({} if pretrain_seed is None else {"pretrain_seed": pretrain_seed})}


def rows_of(correct):
    """'labels' rows (accuracy) of a run right exactly where `correct` is true."""
    return {"form": "labels", "metric": "accuracy",
            "rows": per_example.rows("labels", ["1"] * len(correct), ["1" if c else "0" for c in correct]).tolist()}


@pytest.fixture
def experiment():
    exp = load_experiment("ablation_nsp")  # the paper's Table 5 rows (not the full-sentences input beyond it)
    return dataclasses.replace(exp, columns=(exp.columns[0], PPL),
                               variants=tuple(v for v in exp.variants if v.name != "no_nsp_full_sentences"))


@pytest.fixture
def records():
    lr5, lr3 = {"finetune.learning_rate": 5e-5}, {"finetune.learning_rate": 3e-5}
    return [ft("bert", 0, 80.0, grid=lr5),
            ft("bert", 0, 84.0, grid=lr3),  # lr 3e-5 has the best mean (83 > 78): both its seeds are reported
            ft("bert", 1, 82.0, grid=lr3),
            ft("bert", 1, 76.0, grid=lr5),
            ft("no_nsp", 0, 79.0),
            ft("no_nsp", 1, 99.0, status="failed"),  # ignored: not ok
            ft("no_nsp", 2, 99.0, experiment="masking_rate"),  # ignored: another experiment
            pre(["bert"], 4.5), pre(["no_nsp"], 5.25)]


def test_markdown_layout_exact(records, experiment):
    """Old-format records (one seed, no rows): plain values, Δ a plain PAIRED difference (No NSP seed 0
    against BERT seed 0 of the chosen point: 79 - 84), and footnotes that say there is no interval or test."""
    frame = build_table(records, experiment, load_paper_numbers())
    expected = """\
| Table 5 | MNLI-m | MNLI-m paper | MNLI-m Δ | LM (ppl) | LM (ppl) paper | LM (ppl) Δ |
|---|---:|---:|---:|---:|---:|---:|
| BERT_BASE | 83.0 (2) | 84.4 | ref | 4.50 (1) | – | ref |
| No NSP | 79.0 (1) | 83.9 | -5.0 | 5.25 (1) | – | +0.75 |
| LTR & No NSP | – | 82.1 | – | – | – | – |
| + BiLSTM | – | 82.1 | – | – | – | – |

- MNLI-m: measured on `rte`, a stand-in for `mnli` (its data is not available at this scale); the paper's number is for `mnli`.
- Cells: mean [95% interval] (n runs). Intervals: MNLI-m, LM (ppl): no interval (n < 3 and no per-example rows).
- Δ: ours − BERT_BASE, the mean of paired differences over the runs both rows have (matched on pretraining seed \
and fine-tuning seed), with its 95% interval and p-value; * the interval excludes 0. Tests: MNLI-m, LM (ppl): no test \
(< 3 pairs and no per-example rows).
- No Δ has a test (fewer than 3 paired seeds and no per-example rows): each Δ is a plain difference and says \
nothing about noise.
"""
    assert to_markdown(frame) == expected


def test_frame_numbers_and_other_formats(records, experiment):
    frame = build_table(records, experiment, load_paper_numbers())
    row = frame.loc["BERT_BASE"]
    assert row[("MNLI-m", "mean")] == pytest.approx(83.0) and row[("MNLI-m", "n")] == 2
    assert row[("MNLI-m", "std")] == pytest.approx(math.sqrt(2))  # sample std of 84, 82
    assert row[("MNLI-m", "paper")] == 84.4 and row[("MNLI-m", "method")] == "none"
    assert frame.loc["No NSP", ("MNLI-m", "delta")] == pytest.approx(-5.0)  # paired on seed 0: 79 - 84
    csv = to_csv(frame).splitlines()
    assert csv[0].startswith("Table 5,MNLI-m mean,MNLI-m std,MNLI-m low,MNLI-m high,MNLI-m n,MNLI-m method,"
                             "MNLI-m collapsed,MNLI-m majority,MNLI-m paper,MNLI-m delta,MNLI-m delta_low,"
                             "MNLI-m delta_high,MNLI-m p,MNLI-m p_holm,MNLI-m pairs,MNLI-m test,LM (ppl) mean")
    assert csv[1].startswith("BERT_BASE,83,1.41421,,,2,none,0,,84.4,0,,,,,0,reference,4.5,")
    tex = to_latex(frame)
    assert r"BERT\_BASE & 83.0 (2) & 84.4 & ref" in tex and tex.startswith(r"\begin{tabular}{lrrrrrr}")
    assert r"No NSP & 79.0 (1) & 83.9 & -5.0 & 5.25 (1) & -- & +0.75 \\" in tex


def test_grid_point_with_the_best_mean_not_the_best_point_per_seed(experiment):
    """Point A: seeds 90, 60 (mean 75); point B: 80, 80 (mean 80). The best point per seed would
    report 90 and 80 (mean 85, selected on noise); the rule reports every seed of B: 80 ± 0 (2)."""
    a, b = {"finetune.learning_rate": 5e-5}, {"finetune.learning_rate": 3e-5}
    recs = [ft("bert", 0, 90.0, grid=a), ft("bert", 1, 60.0, grid=a), ft("bert", 1, 80.0, grid=b),
            ft("bert", 0, 80.0, grid=b)]
    assert cell_values(recs, "bert", experiment.columns[0]) == [80.0, 80.0]
    frame = build_table(recs, experiment, [])
    assert frame.loc["BERT_BASE", ("MNLI-m", "mean")] == pytest.approx(80.0)
    assert frame.loc["BERT_BASE", ("MNLI-m", "n")] == 2 and frame.loc["BERT_BASE", ("MNLI-m", "std")] == 0.0
    tie = [ft("bert", 1, 70.0, grid=b), ft("bert", 0, 68.0, grid=a), ft("bert", 1, 72.0, grid=a),
           ft("bert", 0, 70.0, grid=b)]
    assert cell_values(tie, "bert", experiment.columns[0]) == [70.0, 70.0]  # a tie goes to the first point


def test_with_selection_runs_they_choose_the_point_and_only_the_reported_seeds_are_the_cell(experiment):
    """Selection seeds (1000, 1001): point A 70, 74 (mean 72), point B 75, 75 (75): B is chosen, though A's
    reported seeds (90, 60: mean 75) and B's (80, 66: 73) would choose A; the cell is B's reported 66, 80.
    A tie between selection means goes to the first point key in sorted order (3e-05 < 5e-05)."""
    a, b = {"finetune.learning_rate": 5e-5}, {"finetune.learning_rate": 3e-5}
    recs = [ft("bert", 1000, 70.0, grid=a, role="selection"), ft("bert", 1001, 74.0, grid=a, role="selection"),
            ft("bert", 1000, 75.0, grid=b, role="selection"), ft("bert", 1001, 75.0, grid=b, role="selection"),
            ft("bert", 0, 90.0, grid=a, role="candidate"), ft("bert", 1, 60.0, grid=a, role="candidate"),
            ft("bert", 1, 66.0, grid=b, role="candidate"), ft("bert", 0, 80.0, grid=b, role="candidate")]
    assert cell_values(recs, "bert", experiment.columns[0]) == [80.0, 66.0]
    assert build_table(recs, experiment, []).loc["BERT_BASE", ("MNLI-m", "n")] == 2
    tie = [dict(r, main_metric={**r["main_metric"], "value": 72.0}) if r["role"] == "selection" else r for r in recs]
    # (the keys are the points' JSON texts, '{"finetune.learning_rate": 3e-05}' first; record order aside)
    assert cell_values(list(reversed(tie)), "bert", experiment.columns[0]) == [80.0, 66.0]
    # each pretraining seed's runs choose its own point (as the runner runs them): seed 1 chooses A
    other = [ft("bert", 1000, 71.0, grid=a, role="selection", pretrain_seed=1),
             ft("bert", 1000, 60.0, grid=b, role="selection", pretrain_seed=1),
             ft("bert", 0, 55.0, grid=a, role="candidate", pretrain_seed=1)]
    assert cell_values(recs + other, "bert", experiment.columns[0]) == [80.0, 66.0, 55.0]


def test_lower_is_better_picks_the_minimum_grid_point_and_baseline_row(experiment):
    col = dataclasses.replace(experiment.columns[0], metric="heldout.lm_perplexity")  # a lower-is-better metric
    assert col.higher_is_better is False and experiment.columns[0].higher_is_better is True
    exp = dataclasses.replace(experiment, columns=(col,))
    recs = [ft("bert", 0, 30.0, grid={"finetune.epochs": 2.0}), ft("bert", 0, 20.0, grid={"finetune.epochs": 3.0}),
            ft("no_pretraining", 0, 50.0)]
    frame = build_table(recs, exp, [])
    assert frame.loc["BERT_BASE", ("MNLI-m", "mean")] == pytest.approx(20.0)
    assert frame.index[-1] == "No pre-training (random init)"
    assert frame.loc["No pre-training (random init)", ("MNLI-m", "delta")] == pytest.approx(30.0)


def test_fraction_columns_are_scaled(experiment):
    col = dataclasses.replace(experiment.columns[0], times100=True)
    frame = build_table([ft("bert", 0, 0.845)], dataclasses.replace(experiment, columns=(col,)), [])
    assert frame.loc["BERT_BASE", ("MNLI-m", "mean")] == pytest.approx(84.5)


def test_size_notes_and_no_delta_without_reference(experiment):
    exp = dataclasses.replace(experiment, reference="", columns=(PPL,))
    frame = build_table([pre(["bert"], 4.0, (1, 64, 4)), pre(["no_nsp"], 5.0, (2, 96, 6))], exp, [])
    md = to_markdown(frame)
    assert md.splitlines()[0] == "| Table 5 | LM (ppl) | LM (ppl) paper |"
    assert "our model sizes at this scale: BERT_BASE = L1 H64 A4; No NSP = L2 H96 A6" in md


def test_compute_note_sums_the_records_wall_times(experiment, records):
    machine = {"cpu_model": "AMD EPYC", "cpu_cores": 2, "accelerators": []}
    timed = [dict(r, wall_time_s=90.0, hardware=machine) for r in records if r["kind"] == "finetune"]
    resumed = dict(pre(["bert"], 4.5), wall_time_s=5400.0, hardware=machine, output={"steps": 2000, "resumed_from_step": 500})
    whole = dict(pre(["no_nsp"], 5.25), wall_time_s=1800.0, hardware=dict(machine, accelerators=["GPU:0"]),
                 output={"steps": 2000}, wall_time_complete=True)
    random_init = dict(pre(["no_pretraining"], 9.0), wall_time_s=1.0, hardware=machine, output={"steps": 0})
    notes = build_table(timed + [resumed, whole, random_init], experiment).attrs["notes"]
    # 5 ok fine-tuning runs (every grid point: compute spent) x 90 s; 5,400 + 1,800 s of pretraining (random init is not one); the resumed
    # record without wall_time_complete is an older one: its time is a lower bound
    assert notes[-1] == ("Compute (wall clock, from the records): 2 pretraining run(s) 2.0 h (at least: 1 resumed run(s) "
                         "record only their last process), 5 fine-tuning run(s) 8 min; on AMD EPYC, 2 cores; "
                         "AMD EPYC, 2 cores + GPU:0.")
    assert not any(n.startswith("Compute") for n in build_table(records, experiment).attrs["notes"])
    # fine-tuning runs of a pretraining that has no record yet (a staged sweep's exports): said, not hidden
    staged = [dict(r, pretrain_id="abc", config={"pretrain": {"num_steps": 20000}}) for r in timed[:2]]
    notes = build_table(staged + [whole], experiment).attrs["notes"]
    assert notes[-1].startswith("Compute (wall clock, from the records): 1 pretraining run(s) 30 min + 1 not finished "
                                "(a staged run's record, with its time, is written when its last stage ends), 2 fine")


def _record_of(f, seed=None):
    seed = f.seed if seed is None else seed
    return {**ft(f.variant, seed, 0.8, column=f.column, grid=f.grid), "pretrain_id": f.pretrain_id,
            "config": {"init": f.init, "finetune": {**to_dict(f.finetune), "seed": seed}}}


def test_current_records_drop_stale_configs():
    plan = expand(load_experiment("ablation_nsp"), "ci")
    f = plan.finetunes[0]
    good = _record_of(f, seed=5)
    stale = {**good, "config": {"init": f.init, "finetune": {**to_dict(f.finetune), "epochs": 9.0}}}
    old_pre = {**pre(["bert"], 4.0), "pretrain_id": "0123456789ab"}
    assert current_records([good, stale, old_pre], plan) == [good]


def test_current_records_come_in_grid_order():
    plan = expand(load_experiment("ablation_nsp"), "base")
    first, second = plan.finetunes[0], plan.finetunes[1]  # one cell, two grid points
    assert (first.variant, first.column) == (second.variant, second.column) and first.grid != second.grid
    recs = [_record_of(second), _record_of(first)]
    assert current_records(recs, plan) == recs[::-1]


def test_paper_numbers_file():
    rows = load_paper_numbers()
    cell = {(r["table"], r["row"], r["column"]): r["value"] for r in rows}
    assert [cell[("Table 5", "+ BiLSTM", c)] for c in ("MNLI-m", "QNLI", "MRPC", "SST-2", "SQuAD")] == \
        [82.1, 84.1, 75.7, 91.6, 84.9]
    assert [cell[("Table 6", "24 1024 16", c)] for c in ("LM (ppl)", "MNLI-m", "MRPC", "SST-2")] == \
        [3.23, 86.6, 87.8, 93.7]
    assert cell[("Table 7", "Concat Last Four Hidden", "Dev F1")] == 96.1
    assert cell[("Table 7", "BERT_BASE fine-tuning", "Test F1")] == 92.4
    assert [cell[("Table 8", "0/0/100", c)] for c in ("MNLI Fine-tune", "NER Fine-tune", "NER Feature-based")] == \
        [83.6, 94.9, 94.6]
    figure = [r for r in rows if r["table"] == "Figure 5"]
    assert len(figure) == 1 and figure[0]["value"] is None and "1M steps" in figure[0]["note"]
    assert all(r["source"].startswith("Devlin et al. 2018") for r in rows)
    assert len(rows) == 4 * 5 + 6 * 4 + 10 + 6 * 3 + 1


def test_every_shipped_row_and_column_has_its_paper_number():
    published = {(r["table"], r["row"], r["column"]) for r in load_paper_numbers() if r["value"] is not None}
    for name in ("ablation_nsp", "ablation_model_size", "ablation_masking", "ner_feature_based"):
        exp = load_experiment(name)
        for v in (v for v in exp.variants if v.paper_row != "-"):  # "-": beyond the paper
            for c in exp.columns:
                assert (exp.paper_table, v.paper_row or v.row, c.paper_column or c.name) in published, (name, v, c)


def test_malformed_paper_numbers(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("table,row,column,value,metric,source,note\nTable 5,BERT_BASE,QNLI,eighty,accuracy,x,\n")
    with pytest.raises(BertbenchError, match="p.csv:2: value 'eighty' is not a number"):
        load_paper_numbers(path)


def _nsp_holm_records():
    """MNLI-m, 7 seeds. Δ to BERT: No NSP (1, 2, 1, 3, 2, 1, 2): only the two all-same-sign flips of 128
    reach |mean| 12/7, p = 2/128; LTR (1, 1, 1, 1, 1, 1, -1): |sum| >= 5 for 0, 1, 6 or 7 flipped
    signs, 16 of 128, p = 0.125; + BiLSTM (1, -1, 1, -1, 1, -1, 0): mean 0, p = 1.
    Holm: 3 x 2/128 = 0.046875; max(0.046875, 2 x 0.125) = 0.25; max(0.25, 1) = 1."""
    bert = [70.0, 71.0, 72.0, 73.0, 74.0, 75.0, 76.0]
    deltas = {"no_nsp": [1, 2, 1, 3, 2, 1, 2], "ltr_no_nsp": [1, 1, 1, 1, 1, 1, -1],
              "ltr_bilstm": [1, -1, 1, -1, 1, -1, 0]}
    recs = [ft("bert", s, v) for s, v in enumerate(bert)]
    for variant, d in deltas.items():
        recs += [ft(variant, s, v + x) for s, (v, x) in enumerate(zip(bert, d))][::-1]  # any record order
    return recs


def test_paired_delta_sign_flip_and_holm_footnote(experiment):
    exp = dataclasses.replace(experiment, columns=experiment.columns[:1])
    frame = build_table(_nsp_holm_records(), exp, [])
    column = frame["MNLI-m"]
    assert list(column["test"]) == ["reference", "seeds", "seeds", "seeds"]
    assert list(column["p"][1:]) == pytest.approx([2 / 128, 0.125, 1.0])
    assert list(column["p_holm"][1:]) == pytest.approx([0.046875, 0.25, 1.0])
    assert column["delta"]["No NSP"] == pytest.approx(12 / 7)
    low, high = stats.t_interval([1, 2, 1, 3, 2, 1, 2])
    assert (column["delta_low"]["No NSP"], column["delta_high"]["No NSP"]) == (low, high) and low > 0
    assert (column["low"]["BERT_BASE"], column["high"]["BERT_BASE"]) == \
        stats.bootstrap_interval([70.0, 71.0, 72.0, 73.0, 74.0, 75.0, 76.0], seed=0)
    md = to_markdown(frame)
    assert f"| No NSP | 74.7 [{frame.loc['No NSP', ('MNLI-m', 'low')]:.1f}, " in md
    assert f"| – | +1.7*† [+{low:.1f}, +{high:.1f}] p=0.016 |" in md
    assert "| + BiLSTM | 73.0 [" in md and "| +0.0 [" in md and "p=1.000 |" in md
    assert ("- Holm correction over the table's 3 tested comparisons (1 with p < 0.05 before correction): "
            "significant at 0.05 after correction (†): No NSP / MNLI-m +1.7 (better, p=0.016, Holm 0.047).") in md
    assert "Intervals: MNLI-m: bootstrap over seeds (n ≥ 3)." in md
    assert "Tests: MNLI-m: paired sign-flip test and paired t interval over matched seeds (≥ 3 pairs)." in md


def test_one_seed_cells_get_example_intervals_and_paired_example_tests(experiment):
    half, every = [True] * 20 + [False] * 20, [True] * 40
    exp = dataclasses.replace(experiment, columns=experiment.columns[:1])
    recs = [ft("bert", 0, 50.0, example_rows=rows_of(half)), ft("no_nsp", 0, 100.0, example_rows=rows_of(every)),
            ft("ltr_no_nsp", 0, 55.0)]  # no rows: no interval, no test
    frame = build_table(recs, exp, [])
    assert list(frame[("MNLI-m", "method")]) == ["examples", "examples", "none", ""]
    assert list(frame[("MNLI-m", "test")]) == ["reference", "examples", "none", ""]
    assert frame.loc["No NSP", ("MNLI-m", "p")] == pytest.approx(2 / 2001)  # Δ > 0 on every resample
    md = to_markdown(frame)
    assert "| No NSP | 100.0 [100.0, 100.0] (1) |" in md and "| +50.0*† [+" in md
    assert "| LTR & No NSP | 55.0 (1) | – | +5.0 |" in md
    assert ("Intervals: MNLI-m: bootstrap over dev examples (n < 3; the same resampled examples for every run) "
            "for BERT_BASE, No NSP; no interval (n < 3 and no per-example rows) for LTR & No NSP.") in md


def test_collapsed_runs_are_counted_and_kept_and_the_majority_row(experiment):
    mrpc = dataclasses.replace(experiment.columns[0], name="MRPC", task="mrpc")
    exp = dataclasses.replace(experiment, columns=(mrpc,))
    flags = [dict(collapsed=True, collapse_reason="predicts a single class"),
             dict(collapsed=True, collapse_reason="at or below the majority baseline"), dict(collapsed=False)]
    recs = [ft("bert", s, v, column="MRPC", proxy_for=None, baselines={"majority": 68.4}, **flag)
            for s, (v, flag) in enumerate(zip([68.4, 60.0, 80.0], flags))]
    recs += [ft("no_nsp", s, 81.0 + s, column="MRPC", proxy_for=None, baselines={"majority": 68.4}) for s in range(3)]
    frame = build_table(recs, exp, [])
    assert frame.loc["BERT_BASE", ("MRPC", "collapsed")] == 2 and frame.loc["BERT_BASE", ("MRPC", "n")] == 3
    assert frame.loc["BERT_BASE", ("MRPC", "mean")] == pytest.approx((68.4 + 60.0 + 80.0) / 3)  # never dropped
    assert frame.loc["No NSP", ("MRPC", "collapsed")] == 0
    md = to_markdown(frame)
    assert "| BERT_BASE | 69.5 [" in md and "] (3) ⊘2 |" in md
    assert md.splitlines()[6] == "| Majority class (constant prediction) | 68.4 | – | – |"
    assert "⊘k: k of the runs collapsed" in md and "- Majority class (constant prediction): " in md
    assert to_csv(frame).splitlines()[1].startswith("BERT_BASE,69.4667,10.0426,60,80,3,seeds,2,68.4,,0,,,,,0,reference")
    assert r"(3) $\oslash$2" in to_latex(frame)


def test_median_cells(experiment):
    exp = dataclasses.replace(experiment, columns=experiment.columns[:1])
    recs = [ft("bert", s, v) for s, v in enumerate([70.0, 71.0, 90.0])]
    frame = build_table(recs, exp, [], median=True)
    assert frame.loc["BERT_BASE", ("MNLI-m", "median")] == 71.0
    low, high = stats.bootstrap_interval([70.0, 71.0, 90.0], seed=0, stat=np.median)
    assert (frame.loc["BERT_BASE", ("MNLI-m", "median_low")], frame.loc["BERT_BASE", ("MNLI-m", "median_high")]) == \
        (low, high)
    md = to_markdown(frame)
    assert f"| BERT_BASE | 71.0 [{low:.1f}, {high:.1f}] (3) |" in md and "Cells: median [95% interval]" in md
    assert "median" not in to_csv(build_table(recs, exp, [])).splitlines()[0]


def test_pretraining_columns_get_statistics_only_with_three_pretraining_seeds(experiment):
    exp = dataclasses.replace(experiment, columns=(PPL,))
    three = [pre(["bert"], 4.0 + m, pretrain_seed=m) for m in range(3)]
    three += [pre(["no_nsp"], 5.0 + m + 0.1 * m * m, pretrain_seed=m) for m in range(3)]
    frame = build_table(three, exp, [])
    assert frame.loc["BERT_BASE", ("LM (ppl)", "method")] == "seeds" and frame.loc["BERT_BASE", ("LM (ppl)", "n")] == 3
    assert frame.loc["No NSP", ("LM (ppl)", "test")] == "seeds"
    assert frame.loc["No NSP", ("LM (ppl)", "delta")] == pytest.approx(np.mean([1.0, 1.1, 1.4]))
    one = build_table([pre(["bert"], 4.0), pre(["no_nsp"], 5.0)], exp, [])  # old records: no pretrain_seed
    assert one.loc["No NSP", ("LM (ppl)", "test")] == "none" and one.loc["No NSP", ("LM (ppl)", "delta")] == 1.0


def _plan_records(exp, value, seeds=3, **extra):
    """Records matching the ci plan of `exp`, value(run) for each fine-tuning run."""
    plan = expand(exp, "ci", seeds=seeds, baseline=True)
    out = [{**_record_of(f), "task": f.task, "proxy_for": f.proxy_for or None,
            "main_metric": {"name": "accuracy", "value": value(f)}, **extra} for f in plan.finetunes]
    out += [{**pre(list(plan.variants_of(p.id)), 10.0), "pretrain_id": p.id} for p in plan.pretrains]
    return [{**r, "experiment": exp.name} for r in out]


def test_budget_note_is_the_smallest_k_from_which_every_gain_is_real():
    """mlm gains at 100 but not at 200 (noise), then at 300: its budget is 300, not 100; ltr never gains."""
    exp = load_experiment("ablation_steps")
    noise = {0: 0.0, 1: 1.0, 2: -1.0}
    gain = {"mlm@50": (0.0, 2.0, -2.0), "mlm@100": (5.0, 6.0, 4.0), "mlm@200": (1.0, -1.0, 0.5),
            "mlm@300": (3.0, 4.0, 3.5), "ltr@50": (0.0, 0.5, -0.5), "ltr@100": (-1.0, 0.0, 1.0),
            "ltr@200": (0.0, 0.0, 0.0), "ltr@300": (-2.0, -1.0, -1.5), "no_pretraining": (0.0, 0.0, 0.0)}
    recs = _plan_records(exp, lambda f: 60.0 + noise[f.seed] + gain[f.variant][f.seed])
    for r in recs:  # what the runner writes for a sweep's row
        if "@" in r.get("variant", ""):
            r["base_variant"], r["sweep_value"] = r["variant"].split("@")[0], int(r["variant"].split("@")[1])
    frame = build_table(recs, exp)
    budget = [n for n in frame.attrs["notes"] if n.startswith("Budget")]
    assert len(budget) == 1 and budget[0].endswith(
        "SST-2, mlm: 300 (+3.5 [+2.3, +4.7], p=0.250); SST-2, ltr: no k up to 300; "
        "QNLI, mlm: 300 (+3.5 [+2.3, +4.7], p=0.250); QNLI, ltr: no k up to 300.")
    plain = build_table(_plan_records(load_experiment("ablation_nsp"), lambda f: 60.0), load_experiment("ablation_nsp"))
    assert not any(n.startswith("Budget") for n in plain.attrs["notes"])  # not a sweep


def _write_records(folder, recs):
    folder.mkdir(parents=True)
    for i, r in enumerate(recs):
        (folder / f"{i:04d}.json").write_text(json.dumps(r))


def test_write_tables_rebuilds_bit_identically(tmp_path):
    exp = load_experiment("ablation_nsp")
    exp = dataclasses.replace(exp, columns=exp.columns[2:4])  # MRPC, SST-2
    value = lambda f: 60.0 + 3 * (f.variant == "no_nsp") + f.seed + (f.seed * f.seed) % 3 + len(f.column)
    _write_records(tmp_path / "ablation_nsp" / "ci" / "records",
                   _plan_records(exp, value, baselines={"majority": 50.0}))
    text = write_tables(exp, "ci", tmp_path)
    folder = tmp_path / "ablation_nsp" / "ci"
    names = ("table.md", "table.csv", "table.tex", "cells.png")
    first = {n: (folder / n).read_bytes() for n in names}
    assert first["cells.png"][:8] == b"\x89PNG\r\n\x1a\n" and len(first["cells.png"]) > 1000
    assert "| Majority class (constant prediction) | 50.0 |" in text and "| +3.0* [+3.0, +3.0] p=0.250 |" in text
    assert "With 3 paired seeds the exact sign-flip test cannot reach p < 0.05" in text
    assert write_tables(exp, "ci", tmp_path, median=True) != text  # printed only: the files keep the means
    assert {n: (folder / n).read_bytes() for n in names} == first


NEW_FIELDS = ("example_rows", "pretrain_seed", "collapsed", "collapse_reason", "baselines")


def test_committed_old_format_records_still_make_a_table(tmp_path):
    """Records written before the statistics fields (one seed, no rows) still make a table."""
    folder = tmp_path / "ablation_nsp" / "ci" / "records"
    folder.mkdir(parents=True)
    for path in (REPO_RESULTS / "ablation_nsp" / "ci" / "records").glob("*.json"):
        record = json.loads(path.read_text())
        if record.get("seed", 0) == 0:
            (folder / path.name).write_text(json.dumps({k: v for k, v in record.items() if k not in NEW_FIELDS}))
    text = write_tables(load_experiment("ablation_nsp"), "ci", tmp_path)
    assert "| BERT_BASE | " in text and "| ref |" in text and "no interval (n < 3 and no per-example rows)" in text
    assert (tmp_path / "ablation_nsp" / "ci" / "cells.png").read_bytes()[:4] == b"\x89PNG"


def test_table_command_prints_medians_and_power(tmp_path, capsys):
    import argparse

    from bertbench.commands import table

    shutil.copytree(REPO_RESULTS / "ablation_nsp" / "ci" / "records", tmp_path / "ablation_nsp" / "ci" / "records")
    args = argparse.Namespace(experiment="ablation_nsp", scale="ci", format="md", median=True, power=True,
                              results=str(tmp_path), experiments=None)
    assert table.main(args) == 0
    out = capsys.readouterr().out
    assert "Cells: median [95% interval]" in out
    assert "Cells: mean [95% interval]" in (tmp_path / "ablation_nsp" / "ci" / "table.md").read_text()
    # comparisons: the rows the committed records fill (No NSP's segment-pair input awaits its ci rerun)
    assert re.search(r"  MRPC: paired SD [0-9.]+ \(\d comparisons, \d+ pairs\) -> 1 point: [0-9]+ seeds", out)


def test_table_without_records_is_an_error_that_writes_nothing(tmp_path, capsys):
    from bertbench.cli import main

    assert main(["table", "ablation_nsp", "--scale", "small", "--results", str(tmp_path / "typo")]) == BertbenchError.exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no run records for ablation_nsp at scale small" in err[0]
    assert not (tmp_path / "typo").exists()
