"""Experiments as data: every shipped file loads at every scale; ids are content hashes of resolved configs."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bertbench.errors import BertbenchError, ConfigError
from bertbench.experiments.ids import content_id
from bertbench.experiments.plan import expand
from bertbench.experiments.schema import EXPERIMENTS_DIR, experiment_names, load_experiment, load_scales
from bertbench.results.runner import describe

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("ablation_nsp", "ablation_model_size", "ablation_masking", "ner_feature_based", "ablation_steps",
           "masking_rate")


def plan(name, scale="ci", **kw):
    return expand(load_experiment(name), scale, **kw)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_experiment_plans_at_every_scale(name, tmp_path):
    assert set(SHIPPED) <= set(experiment_names())
    for scale in load_scales():
        p = expand(load_experiment(name), scale, baseline=True)
        assert p.pretrains and p.finetunes
        lines = describe(p, tmp_path / "results", tmp_path / "runs")  # the dry run
        assert sum(line.startswith("  pretrain ") for line in lines) == len(p.pretrains)
        assert sum(line.startswith("  finetune ") for line in lines) == len(p.finetunes)
        assert lines[0].startswith("plan ") and any(line.startswith("to run: ") for line in lines)


def test_dry_run_and_list_commands():
    for name, scale in (("ablation_nsp", "ci"), ("ablation_steps", "small"), ("ablation_model_size", "base")):
        proc = subprocess.run([sys.executable, "-m", "bertbench", "run", name, "--scale", scale, "--dry-run",
                               "--runs", "/nonexistent", "--results", "/nonexistent"],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"plan {name} @ {scale}:")
    proc = subprocess.run([sys.executable, "-m", "bertbench", "list"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0 and "ablation_nsp: " in proc.stdout and "324 fine-tuning runs" in proc.stdout


def test_content_id_is_sha256_of_canonical_json():
    expected = hashlib.sha256(b'{"a":1,"b":[1.5,"x"]}').hexdigest()[:12]
    assert content_id({"b": [1.5, "x"], "a": 1}) == expected


def test_same_config_same_id_and_sharing_across_variants_and_experiments():
    nsp = plan("ablation_nsp")
    assert [f.id for f in nsp.finetunes] == [f.id for f in plan("ablation_nsp").finetunes]
    assert len(nsp.pretrains) == 5  # ltr_bilstm shares ltr_no_nsp's run (its head is a fine-tuning setting)
    assert {p.kind for p in nsp.pretrains} == {"pretrain", "random_init"}  # + include_baseline's row
    assert nsp.variant_pretrain["ltr_no_nsp"] == nsp.variant_pretrain["ltr_bilstm"]
    bert = nsp.variant_pretrain["bert"]
    assert plan("masking_rate").variant_pretrain["mask15"] == bert  # explicit 0.15 = the default
    # The NER experiments pretrain a cased L4 model (last-four features, cased as the paper's NER):
    # one run shared by every ner_feature_based row and ablation_masking's 80/10/10 row.
    ner = plan("ablation_masking").variant_pretrain["mask80_same10_rnd10"]
    assert ner != bert
    assert set(plan("ner_feature_based").variant_pretrain.values()) == {ner}
    assert plan("ablation_nsp", seeds=3).variant_pretrain == nsp.variant_pretrain  # seeds are fine-tuning's


def test_any_resolved_change_gives_a_new_id(tmp_path):
    shutil.copytree(EXPERIMENTS_DIR, tmp_path / "exp")
    path = tmp_path / "exp" / "ablation_nsp.toml"
    base = expand(load_experiment("ablation_nsp", tmp_path / "exp"), "ci")
    path.write_text(path.read_text().replace('pretrain.input_format = "segment_pairs" }',
                                             'pretrain.input_format = "segment_pairs", pretrain.dropout = 0.1 }'))
    with pytest.raises(ConfigError, match="unknown setting 'pretrain.dropout' \\(did you mean 'finetune.dropout' or 'model.dropout'\\?\\)"):
        load_experiment("ablation_nsp", tmp_path / "exp")
    path.write_text(path.read_text().replace("pretrain.dropout = 0.1", "model.dropout = 0.2"))
    changed = expand(load_experiment("ablation_nsp", tmp_path / "exp"), "ci")
    assert changed.variant_pretrain["no_nsp"] != base.variant_pretrain["no_nsp"]
    assert changed.variant_pretrain["bert"] == base.variant_pretrain["bert"]
    ft = {(f.variant, f.column): f.id for f in changed.finetunes}
    assert all((f.id == ft[(f.variant, f.column)]) == (f.variant != "no_nsp") for f in base.finetunes)
    seeds = plan("ablation_nsp", seeds=2).finetunes
    assert len({f.id for f in seeds}) == len(seeds) == 60  # the seed is part of a fine-tuning id


def test_config_errors_name_the_file_and_the_fix(tmp_path):
    shutil.copytree(EXPERIMENTS_DIR, tmp_path / "exp")
    path = tmp_path / "exp" / "ablation_nsp.toml"
    text = path.read_text()
    no_nsp = 'pretrain.objective = "mlm", pretrain.input_format = "segment_pairs" }'
    for bad, message in ((no_nsp, "pretrain.objective='mlmm' is not valid"), (no_nsp, "did you mean 'mlm'")):
        path.write_text(text.replace(bad, bad.replace('"mlm"', '"mlmm"')))
        with pytest.raises(ConfigError, match=message) as err:
            expand(load_experiment("ablation_nsp", tmp_path / "exp"), "ci")
        assert "ablation_nsp.toml variant 'no_nsp' at scale 'ci'" in str(err.value) and "\n" not in str(err.value)
    path.write_text(text.replace('task = "sst2"', 'task = "sst-2"'))
    with pytest.raises(BertbenchError, match="unknown task in ablation_nsp.toml 'sst-2' \\(did you mean 'sst2'"):
        load_experiment("ablation_nsp", tmp_path / "exp")
    path.write_text(text.replace("[[variants]]", "[[varaints]]", 1))
    with pytest.raises(ConfigError, match="unknown key 'varaints' \\(did you mean 'variants'"):
        load_experiment("ablation_nsp", tmp_path / "exp")
    with pytest.raises(BertbenchError, match="unknown experiment 'ablation_nps'"):
        load_experiment("ablation_nps")
    with pytest.raises(BertbenchError, match="unknown scale 'bse' \\(did you mean 'base'"):
        plan("ablation_nsp", "bse")


def _edited(tmp_path, name, old, new, count=1):
    """A copy of the shipped experiments with one edit in `name`.toml."""
    if not (tmp_path / "exp").exists():
        shutil.copytree(EXPERIMENTS_DIR, tmp_path / "exp")
    path = tmp_path / "exp" / f"{name}.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, count))
    return tmp_path / "exp"


@pytest.mark.parametrize("old, new, message", [
    ('metric = "f1"\nset', 'metric = "f1"\ndecimals = "two"\nset', "column 'SQuAD': decimals must be int, got str"),
    ('metric = "f1"\nset', 'metric = "f1"\ntimes100 = "yes"\nset', "column 'SQuAD': times100 must be bool"),
    ('row = "No NSP"', 'row = "No NSP"\npretrain = "false"', "variant 'no_nsp': pretrain must be bool, got str"),
    ('row = "No NSP"', 'row = 7', "variant 'no_nsp': row must be str, got int 7"),
    ("include_baseline = true", 'include_baseline = "no"', "include_baseline must be bool"),
    ('reference = "bert"', 'reference = "bert"\nseeds = "3"', "ablation_nsp.toml: seeds must be int, got str"),
    ('metric = "f1"\nset', 'metric = "f1"\nhigher_is_better = "false"\nset',
     "'higher_is_better' is not a setting: a metric's direction comes from bertbench.evaluation.metrics"),
    ('metric = "f1"\nset', 'metric = "f1_score"\nset', "column 'SQuAD': unknown metric 'f1_score'"),
])
def test_experiment_tables_are_type_checked(tmp_path, old, new, message):
    directory = _edited(tmp_path, "ablation_nsp", old, new)
    with pytest.raises(ConfigError, match=message) as err:
        load_experiment("ablation_nsp", directory)
    assert "\n" not in str(err.value)


def test_scales_are_type_checked(tmp_path):
    directory = _edited(tmp_path, "_scales", "seeds = 6", 'seeds = "6"')
    with pytest.raises(ConfigError, match=r"_scales.toml \[small\]: seeds must be int, got str"):
        load_scales(directory)


def test_column_direction_comes_from_the_metric_registry():
    columns = {c.name: c for c in load_experiment("ablation_model_size").columns}
    assert columns["LM (ppl)"].higher_is_better is False and columns["MRPC"].higher_is_better is True


def test_scales_presets_proxies_and_grid():
    ci = plan("ablation_nsp")
    pre = ci.pretrains[0]
    assert (pre.model.num_layers, pre.model.hidden_dim, pre.pretrain.num_steps, pre.pretrain.batch_size) == \
        (2, 128, 600, 32)
    assert {f.task: f.proxy_for for f in ci.finetunes} == {"rte": "mnli", "qnli_devsplit": "qnli", "mrpc": "",
                                                          "sst2": "", "squad1_devsplit": "squad1"}
    base = plan("ablation_nsp", "base")
    b = base.pretrains[0].pretrain
    assert (b.batch_size, b.num_steps, b.max_seq_length, b.phase2_max_seq_length, b.phase2_fraction,
            b.learning_rate, b.warmup_steps) == (256, 1_000_000, 128, 512, 0.1, 1e-4, 10_000)
    assert not any(f.proxy_for for f in base.finetunes) and len(base.finetunes) == 6 * 5 * 18
    squad = next(f for f in base.finetunes if f.task == "squad1")
    assert squad.finetune.max_seq_length == 384
    sizes = {v: (p.model.num_layers, p.model.hidden_dim, p.model.num_heads, p.model.intermediate_dim)
             for v, pid in plan("ablation_model_size", "base").variant_pretrain.items()
             for p in plan("ablation_model_size", "base").pretrains if p.id == pid}
    assert sizes["l6_h768_a3"] == (6, 768, 3, 3072) and sizes["l24_h1024_a16"] == (24, 1024, 16, 4096)
    ci_sizes = {p.model.hidden_dim: p.model.intermediate_dim for p in plan("ablation_model_size").pretrains}
    assert ci_sizes == {64: 256, 96: 384}  # intermediate follows the overridden H (4H)


def test_steps_sweep_is_one_pretraining_per_objective_with_exports():
    p = plan("ablation_steps")
    trained = [pre for pre in p.pretrains if pre.kind == "pretrain"]
    assert len(trained) == 2 and len(p.pretrains) == 3  # + the no-pretraining row (k = 0)
    assert all(pre.pretrain.num_steps == 300 and pre.export_at == (50, 100, 200) for pre in trained)
    inits = {f.variant: f.init for f in p.finetunes}
    assert inits["mlm@50"] == "encoder_step50" and inits["ltr@300"] == "encoder"


def test_baseline_is_random_init_and_only_filters():
    p = plan("ablation_nsp", baseline=True, only=["bert"])
    assert [v.name for v in p.variants] == ["bert", "no_pretraining"]
    assert {pre.kind for pre in p.pretrains} == {"pretrain", "random_init"}
    assert [v.name for v in plan("ablation_nsp").variants] == ["bert", "no_nsp", "no_nsp_full_sentences",
                                                               "ltr_no_nsp", "ltr_bilstm",
                                                               "no_pretraining"]  # include_baseline
    assert [v.name for v in plan("ablation_nsp", only=["bert", "no_nsp"]).variants] == ["bert", "no_nsp"]


def test_pretraining_seeds_replicate_each_variant_and_keep_seed_zero_ids():
    one = plan("ablation_nsp", seeds=2)
    three = plan("ablation_nsp", seeds=2, pretrain_seeds=3)
    assert three.variant_pretrain == one.variant_pretrain  # seed 0 is the plain run: same ids
    assert len(three.pretrains) == 3 * len(one.pretrains)
    bert = [p for p in three.pretrains if "bert" in three.variants_of(p.id)]
    assert sorted((p.pretrain_seed, p.pretrain.seed) for p in bert) == [(0, 0), (1, 1), (2, 2)]
    assert {f.id for f in one.finetunes} <= {f.id for f in three.finetunes}
    units = {(f.pretrain_seed, f.seed) for f in three.finetunes if f.variant == "bert" and f.column == "MRPC"}
    assert units == {(m, s) for m in range(3) for s in range(2)}
    assert set(three.variants_of(three.variant_pretrain["ltr_no_nsp"])) == {"ltr_no_nsp", "ltr_bilstm"}
    with pytest.raises(ConfigError, match="pretrain-seeds must be at least 1"):
        plan("ablation_nsp", pretrain_seeds=0)


def test_a_later_field_at_its_old_behaviour_keeps_the_run_id():
    """finetune.padding and finetune.precision came after the committed runs: "full" and "float32" (what
    they did) keep their ids; another padding is another run."""
    import dataclasses

    from bertbench.config import FinetuneConfig, to_dict
    from bertbench.experiments.ids import HASH_VERSION, content_id, finetune_payload

    cfg = FinetuneConfig(task="sst2")
    old = {k: v for k, v in to_dict(cfg).items() if k not in ("padding", "precision")}
    before = content_id({"hash_version": HASH_VERSION, "kind": "finetune", "pretrain_id": "p", "init": "i",
                         "finetune": old, "data": "sample"})
    assert content_id(finetune_payload("p", "i", cfg, "sample")) == before
    dynamic = dataclasses.replace(cfg, padding="dynamic")
    assert content_id(finetune_payload("p", "i", dynamic, "sample")) != before
