"""The DOC-SENTENCES input format (pretrain.input_format = "doc_sentences", RoBERTa, Liu et al. 2019,
Table 2) and the paper's segment-pair "No NSP": instances checked against the definitions on real
Wikipedia text (reading the tokens, not the code's provenance), masking statistics on packed instances,
the config errors, the TFRecord path, ablation_nsp's plan, and a tiny real pretraining that resumes
bit-identically and whose encoder fine-tunes."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import P_MIN, pretrain_outcome, real_documents, real_tokenizer
from scipy import stats

from bertbench.config import PretrainConfig, model_preset
from bertbench.errors import BertbenchError, ConfigError
from bertbench.experiments.ids import content_id, pretrain_payload
from bertbench.experiments.plan import expand
from bertbench.experiments.schema import load_experiment
from bertbench.pretraining.instances import create_instances, tokenize_documents
from bertbench.pretraining.masking import mask_tokens, num_to_predict, spec_from_tokenizer, tf_mask_tokens

SEQ = 128
PACKED = dict(objective="mlm", input_format="doc_sentences")
TINY = model_preset("tiny", num_layers=1, hidden_dim=32, num_heads=2)


@pytest.fixture(scope="module")
def real():
    tokenizer = real_tokenizer()
    return tokenizer, tokenize_documents(tokenizer, real_documents(6))


@pytest.fixture(autouse=True)
def shared_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("BERTBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "bertbench-cache"))


def _instances(docs, ids, seq=SEQ, **fields):
    cls_id, sep_id, pad_id = ids
    return create_instances(docs, PretrainConfig(max_seq_length=seq, **fields), cls_id, sep_id, pad_id)


def _check_packing(inst, docs, seq, ids):
    """Assert the DOC-SENTENCES definition row by row, from the tokens alone; returns per row (tokens
    between [CLS] and [SEP], length of the whole sentence after it (0 after a cut), at a document end)."""
    cls_id, sep_id, pad_id = ids
    limit, rows, out = seq - 2, iter(range(len(inst))), []
    assert np.all(inst.segment_ids == 0) and np.all(inst.next_sentence_labels == 0)  # one segment, no NSP
    for doc in docs:
        flat, sizes = np.concatenate(doc), [len(s) for s in doc]
        starts = set(np.cumsum([0, *sizes]).tolist())  # sentence boundaries in the document's tokens
        sentence_of = np.repeat(np.arange(len(doc)), sizes)  # token -> its sentence
        pos = 0
        while pos < len(flat):  # the rows of one document come together, in order
            r = next(rows)
            row, n = inst.token_ids[r], int(inst.lengths[r])
            assert row[0] == cls_id and row[n - 1] == sep_id and np.all(row[n:] == pad_id)
            body = row[1:n - 1]
            assert 1 <= len(body) <= limit and not np.isin(body, (cls_id, sep_id)).any()
            # the document's next tokens: contiguous, in order, nothing skipped, within this document
            assert np.array_equal(body, flat[pos:pos + len(body)])
            end = pos + len(body)
            for edge in (pos, end):  # whole sentences, but for the cuts of one longer than the limit
                assert edge in starts or sizes[sentence_of[edge]] > limit
            if end not in starts:
                assert len(body) == limit  # a cut is full length
            last = end == len(flat)
            nxt = sizes[sentence_of[end]] if not last and end in starts else 0
            if nxt:
                assert len(body) + nxt > limit  # greedy: the next whole sentence would not have fit
            out.append((len(body), nxt, last))
            pos = end
    assert next(rows, None) is None  # no row of anything else
    return out


def test_doc_sentences_instances_follow_the_definition(real):
    tokenizer, docs = real
    ids = (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    inst = _instances(docs, ids, **PACKED)
    rows = _check_packing(inst, docs, SEQ, ids)
    assert len(rows) > 50
    inner = [(n, nxt) for n, nxt, last in rows if not last]  # rows followed by more of their document
    ends = [n for n, _, last in rows if last]
    assert len(ends) == len(docs)
    fill = np.mean([n for n, _ in inner]) / (SEQ - 2)
    # Mean fill: each inner row lacks less than its next sentence (a cut lacks nothing); only document
    # ends may be short, and are on average.
    assert fill >= 1 - np.mean([nxt for _, nxt in inner]) / (SEQ - 2) and fill > np.mean(ends) / (SEQ - 2)
    # "auto" with mlm / ltr is this format (the runs from before the setting), and LTR may ask for it
    for fields in ({"objective": "mlm"}, {"objective": "ltr", "input_format": "doc_sentences"}):
        again = _instances(docs, ids, **fields)
        assert np.array_equal(again.token_ids, inst.token_ids) and np.array_equal(again.lengths, inst.lengths)


def test_an_overlong_sentence_is_cut_into_full_length_pieces():
    ids, seq = (1, 2, 0), 12  # [CLS] 1, [SEP] 2, [PAD] 0; words from 10 on; 10 tokens fit
    counter = iter(range(10, 10_000))
    sentence = lambda n: np.array([next(counter) for _ in range(n)], np.int32)  # noqa: E731
    docs = [[sentence(3), sentence(25), sentence(4), sentence(4), sentence(3)], [sentence(7)], [sentence(10)]]
    inst = _instances(docs, ids, seq=seq, **PACKED)
    rows = _check_packing(inst, docs, seq, ids)
    # 3 | 10 10 | 5+4 (the cut's remainder opens a row) | 4+3 | 7 | 10
    assert [n for n, _, _ in rows] == [3, 10, 10, 9, 7, 7, 10]


def test_segment_pair_no_nsp_keeps_berts_input(real):
    """The paper's No NSP drops the loss, not the pairs: the same instances as BERT's."""
    tokenizer, docs = real
    ids = (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    bert = _instances(docs, ids, objective="mlm+nsp")
    no_nsp = _instances(docs, ids, objective="mlm", input_format="segment_pairs")
    for field in ("token_ids", "segment_ids", "lengths", "sources"):
        assert np.array_equal(getattr(bert, field), getattr(no_nsp, field)), field
    assert (no_nsp.segment_ids == 1).any()


@pytest.mark.parametrize("engine", ["numpy", "tf"])
def test_masking_rates_on_packed_instances(real, engine):
    """15% of each packed sequence (google-research/bert's count), then 80/10/10, as for pairs."""
    tokenizer, docs = real
    inst = _instances(docs, (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id), **PACKED)
    spec = spec_from_tokenizer(tokenizer, max_predictions=20)
    tokens, lengths = np.tile(inst.token_ids, (4, 1)), np.tile(inst.lengths, 4)
    if engine == "numpy":
        out = mask_tokens(tokens, lengths, spec, np.random.default_rng(5))
    else:
        import tensorflow as tf

        out = {k: v.numpy() for k, v in tf_mask_tokens(tf.constant(tokens), tf.constant(lengths), spec,
                                                      tf.constant([5, 1], tf.int64)).items()}
    weights = out["masked_lm_weights"] > 0
    assert np.array_equal(weights.sum(1), num_to_predict(lengths, spec))
    candidates = (~spec.special_mask[tokens] & (np.arange(SEQ) < lengths[:, None])).sum()
    assert abs(weights.sum() / candidates - 0.15) < 0.01
    rows, slots = np.nonzero(weights)
    before = tokens[rows, out["masked_lm_positions"][rows, slots]]
    now = out["input_ids"][rows, out["masked_lm_positions"][rows, slots]]
    assert not np.isin(before, list(tokenizer.special_ids)).any()
    counts = np.array([(now == spec.mask_id).sum(), (now == before).sum(), 0])
    counts[2] = len(now) - counts.sum()
    collide = 0.1 / len(spec.replace_ids)  # a random draw equal to the original reads as SAME
    expected = np.array([0.8, 0.1 + collide, 0.1 - collide]) * len(now)
    assert len(now) > 5000 and stats.chisquare(counts, expected).pvalue > P_MIN, counts / len(now)


def test_config_errors_name_the_fix(tmp_path, capsys):
    with pytest.raises(ConfigError, match="use objective 'mlm' or 'ltr' with it") as err:
        PretrainConfig(input_format="doc_sentences")  # the default objective is mlm+nsp
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="did you mean 'doc_sentences'"):
        PretrainConfig(objective="mlm", input_format="doc_sentence")
    formats = {(o, f): PretrainConfig(objective=o, input_format=f).instance_format
               for o in ("mlm+nsp", "mlm", "ltr") for f in ("auto", "segment_pairs", "doc_sentences")
               if (o, f) != ("mlm+nsp", "doc_sentences")}
    assert formats[("mlm+nsp", "auto")] == "segment_pairs" and formats[("mlm", "auto")] == "doc_sentences"
    assert formats[("ltr", "auto")] == "doc_sentences" == formats[("ltr", "doc_sentences")]
    assert formats[("mlm", "segment_pairs")] == formats[("ltr", "segment_pairs")] == "segment_pairs"
    from bertbench.cli import main

    code = main(["pretrain", "--scale", "ci", "--set", "pretrain.input_format=doc_sentences", "--out",
                 str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "input_format='doc_sentences'" in err and "\n" not in err
    assert not (tmp_path / "run").exists()


# pretraining ids of the committed ci records (results/ablation_nsp/ci), from before input_format: the
# row then called "No NSP" packed DOC-SENTENCES, the run now named no_nsp_full_sentences
COMMITTED = {"bert": "dffec2eb4fa2", "no_nsp_full_sentences": "2c9fb766faab", "ltr_no_nsp": "2f55189eba39",
             "ltr_bilstm": "2f55189eba39", "no_pretraining": "898387ebebf9"}


def test_plan_ids_and_the_two_no_nsp_inputs(tmp_path):
    """The setting keeps every committed id (a format set to what "auto" picks is the same run); the
    paper's segment-pair No NSP is a new pretraining next to the full-sentences one."""
    plan = expand(load_experiment("ablation_nsp"), "ci", baseline=True)
    ids, runs = plan.variant_pretrain, {p.id: p for p in plan.pretrains}
    assert {v: i for v, i in ids.items() if v != "no_nsp"} == COMMITTED
    pairs, full = runs[ids["no_nsp"]].pretrain, runs[ids["no_nsp_full_sentences"]].pretrain
    assert (pairs.instance_format, full.instance_format) == ("segment_pairs", "doc_sentences")
    assert len({ids["bert"], ids["no_nsp"], ids["no_nsp_full_sentences"]}) == 3
    auto = dataclasses.replace(full, input_format="auto")  # explicit doc_sentences for mlm = "auto"
    assert content_id(pretrain_payload("pretrain", runs[ids["bert"]].model, auto)) == COMMITTED["no_nsp_full_sentences"]
    bert = runs[ids["bert"]]
    explicit = dataclasses.replace(bert.pretrain, input_format="segment_pairs")  # mlm+nsp's "auto"
    assert content_id(pretrain_payload("pretrain", bert.model, explicit)) == COMMITTED["bert"]


def test_a_run_folder_from_before_the_setting_resumes(tmp_path):
    """run_config.json written before pretrain.input_format existed: a rerun at "auto" is the same run
    (as its id says), and so is one naming the format "auto" picks; another format is another config."""
    from bertbench.pretraining.checkpoints import RUN_CONFIG, check_run_config

    cfg = PretrainConfig(objective="mlm")
    flat = {f"{part}.{k}": v for part, c in (("model", TINY), ("pretrain", cfg)) for k, v in
            json.loads(json.dumps(dataclasses.asdict(c))).items() if k != "input_format"}
    (tmp_path / RUN_CONFIG).write_text(json.dumps({"config": flat, "diverged_at_step": None, "changes": []}))
    (tmp_path / "metrics.jsonl").write_text('{"step": 4}\n')  # progress: another config would be refused
    assert check_run_config(tmp_path, TINY, cfg) is None
    assert check_run_config(tmp_path, TINY, dataclasses.replace(cfg, input_format="doc_sentences")) is None
    with pytest.raises(BertbenchError, match="pretrain.input_format: None -> 'segment_pairs'"):
        check_run_config(tmp_path, TINY, dataclasses.replace(cfg, input_format="segment_pairs"))


@pytest.mark.slow
def test_tfrecords_carry_the_format(real, tmp_path):
    from bertbench.pretraining.dataset import pretraining_dataset, pretraining_input
    from bertbench.pretraining.tfrecords import write_pretraining_data

    tokenizer, _ = real
    cfg = PretrainConfig(max_seq_length=32, dupe_factor=1, batch_size=4, **PACKED)
    summary = write_pretraining_data(cfg, tokenizer, tmp_path / "records", max_documents=3)
    assert summary["input_format"] == "doc_sentences"
    records = dataclasses.replace(cfg, corpus=str(tmp_path / "records"), input_format="segment_pairs")
    with pytest.raises(BertbenchError, match="holds doc_sentences instances, not segment_pairs") as err:
        pretraining_input(records, tokenizer)
    assert "\n" not in str(err.value)
    corpus, adapted = pretraining_input(dataclasses.replace(records, input_format="auto"), tokenizer)
    features, labels = next(iter(pretraining_dataset(adapted, tokenizer, tfrecord_paths=corpus.paths)))
    assert not features["segment_ids"].numpy().any() and "next_sentence_labels" not in labels


@pytest.mark.slow
def test_tiny_pretraining_resumes_bit_identically_and_fine_tunes(tmp_path):
    from bertbench.config import FinetuneConfig
    from bertbench.finetuning.loop import finetune
    from bertbench.pretraining.loop import pretrain

    cfg = PretrainConfig(num_steps=12, warmup_steps=2, batch_size=8, max_seq_length=32, log_every=4,
                         checkpoint_every=4, heldout_fraction=0.02, learning_rate=1e-3, precision="float32",
                         **PACKED)
    reference = pretrain(TINY, cfg, tmp_path / "reference", verbose=False)
    assert reference["pretrain"]["input_format"] == "doc_sentences" and "nsp_loss" not in reference["heldout"]
    # the folder as a kill right after checkpoint 4 leaves it (test_pretrain_faults kills for real)
    run = tmp_path / "run"
    shutil.copytree(tmp_path / "reference", run)
    (run / "summary.json").unlink()
    shutil.rmtree(run / "encoder")
    for path in (run / "ckpt").glob("ckpt-*"):
        if not path.name.startswith("ckpt-4."):
            path.unlink()
    assert pretrain(TINY, cfg, run, verbose=False)["resumed_from_step"] == 4
    assert pretrain_outcome(run) == pretrain_outcome(tmp_path / "reference")
    ft = FinetuneConfig(task="mrpc", max_train_examples=16, max_eval_examples=16, epochs=1.0, batch_size=8,
                        max_seq_length=32, learning_rate=1e-3)
    record = finetune(ft, str(run / "encoder"), tmp_path / "mrpc")  # restores every encoder weight by name
    assert record["status"] == "ok" and record["num_eval_examples"] == 16
    assert Path(record["predictions_path"]).is_file()
