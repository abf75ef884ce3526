"""The CLI's error surface: bad input of every kind, to every subcommand, as a new user would give it.

Contract (README "Exit status"): exit 2, exactly one line `bertbench <command>: error: <what>; <fix>` on
stderr, no traceback, nothing written or created (the output location is unchanged), and no TensorFlow
work before the input is validated. Most cases call `cli.main` in-process with TensorFlow made
unimportable (a case that reached TensorFlow fails); a few run in a child to see the real stderr.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bertbench import cli, files
from bertbench.resources import SAMPLE_DIR

NOT_UTF8 = b"fine line\n\xff\xfe broken\n"
MRPC_DEV = SAMPLE_DIR / "glue" / "MRPC" / "dev.tsv"
SQUAD_DEV = SAMPLE_DIR / "squad" / "dev-v1.1.json"


def _squad(data):
    return json.dumps({"version": "1.1", "data": data})


_PARAGRAPH = {"context": "Paris is in France.", "qas": [
    {"id": "q1", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}]}]}
_BASELINE = {"suite": {"experiment": "ablation_nsp", "scale": "ci"}, "metrics": {}}

# name -> bytes or text of the fixture files every case may name as {name}
FILES = {
    "bad.txt": NOT_UTF8,
    "afile": "not a folder\n",
    "empty.txt": "",
    "preds.tsv": "index\tprediction\n0\t1\n",
    "bad_preds.tsv": b"index\tprediction\n0\t\xff\n",
    "bad_gold.tsv": MRPC_DEV.read_bytes()[:200] + b"\xff\n",
    "squad_bad.json": b'{"data": [], "x": "\xff"}',
    "squad_preds.json": json.dumps({"q1": "France"}),
    "squad_list.json": json.dumps(["France"]),
    "squad_broken.json": '{"q1": "France"',
    "squad_data_not_object.json": _squad([1]),
    "squad_qas_not_object.json": _squad([{"title": "t", "paragraphs": [{"context": "c", "qas": ["q"]}]}]),
    "squad_paragraph_not_object.json": _squad([{"title": "t", "paragraphs": ["p"]}]),
    "squad_start_string.json": _squad([{"title": "t", "paragraphs": [{**_PARAGRAPH, "qas": [
        {"id": "q1", "question": "Where?", "answers": [{"text": "France", "answer_start": "12"}]}]}]}]),
    "squad_no_context.json": _squad([{"title": "t", "paragraphs": [{"qas": []}]}]),
    "squad_good.json": _squad([{"title": "t", "paragraphs": [_PARAGRAPH]}]),
    "conll_bad.txt": b"EU B-ORG B-ORG\n\xffrejects O O\n",
    "vocab_bad.txt": b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n\xff\n",
    "bad.toml": "[pretrain\nlearning_rate = 1\n",
    "unknown_table.toml": "[nonsense]\nx = 1\n",
    "baseline_no_metrics.json": json.dumps({"suite": _BASELINE["suite"]}),
    "baseline_list.json": json.dumps([_BASELINE]),
    "baseline_bad.json": b'{"metrics": "\xff"}',
    "results/ablation_nsp/ci/records/only_status.json": json.dumps({"status": "ok"}),
    "list_results/ablation_nsp/ci/records/a.json": json.dumps([{"status": "ok"}]),
    "broken_results/ablation_nsp/ci/records/a.json": '{"status": "ok"',
    "bytes_results/ablation_nsp/ci/records/a.json": b'{"status": "\xff"}',
    "glue_bad/glue/MRPC/train.tsv": MRPC_DEV.read_bytes(),
    "glue_bad/glue/MRPC/dev.tsv": MRPC_DEV.read_bytes()[:300] + b"\xfe\xff\n",
    "glue_empty/glue/MRPC/dev.tsv": b"",
    "adir/keep.txt": "x\n",
    "experiments/_scales.toml": (Path(cli.__file__).parents[1] / "experiments" / "_scales.toml").read_text(),
    "experiments/broken.toml": "[experiment\n",
    "bad_experiments/_scales.toml": (Path(cli.__file__).parents[1] / "experiments" / "_scales.toml").read_text(),
    "bad_experiments/bad.toml": b"[experiment]\ntitle = '\xff'\n",
    "readonly/keep.txt": "x\n",
    "gpt2/config.json": json.dumps({"model_type": "gpt2", "vocab_size": 8}),
    "gpt2/vocab.txt": "a\n",
}

# (id, argv with {placeholders} of FILES and {tmp}, a fragment the message must contain)
CASES = [
    # usage
    ("no-such-command", "frobnicate", "invalid choice"),
    ("no-command", "--verbose", "a COMMAND is required"),
    ("missing-required", "finetune", "--task"),
    ("float-option-not-a-number", "finetune --task mrpc --random-init --lr fast", "--lr"),
    ("unknown-option", "models --colour", "unrecognized"),
    # score: names, files, encodings, shapes
    ("score-unknown-task", "score mrcp --data {preds.tsv} --predictions {preds.tsv}", "did you mean 'mrpc'"),
    ("score-missing-predictions", "score mrpc --data {preds.tsv} --predictions {tmp}/nope.tsv", "nope.tsv"),
    ("score-missing-gold", "score mrpc --data {tmp}/nope.tsv --predictions {preds.tsv}", "nope.tsv"),
    ("score-missing-fix-no-data-dir", "score mrpc --data {tmp}/nope.tsv --predictions {preds.tsv}", "--data"),
    ("score-glue-gold-not-utf8", "score mrpc --data {bad_gold.tsv} --predictions {preds.tsv}", "byte "),
    ("score-glue-preds-not-utf8", f"score mrpc --data {MRPC_DEV} --predictions {{bad_preds.tsv}}", "byte 19"),
    ("score-squad-gold-not-utf8", "score squad1 --data {squad_bad.json} --predictions {squad_preds.json}", "byte"),
    ("score-squad-preds-not-utf8", "score squad1 --data {squad_good.json} --predictions {bad.txt}", "byte 10"),
    ("score-squad-na-prob-not-utf8", "score squad2 --data {squad_good.json} --predictions {squad_preds.json} "
     "--na-prob {bad.txt}", "byte 10"),
    ("score-conll-preds-not-utf8", "score conll2003 --predictions {conll_bad.txt}", "byte 15"),
    ("score-squad-data-entry-not-object", "score squad1 --data {squad_data_not_object.json} "
     "--predictions {squad_preds.json}", "data[0] must be an object"),
    ("score-squad-qas-not-object", "score squad1 --data {squad_qas_not_object.json} "
     "--predictions {squad_preds.json}", "data[0].paragraphs[0].qas[0] must be an object"),
    ("score-squad-paragraph-not-object", "score squad1 --data {squad_paragraph_not_object.json} "
     "--predictions {squad_preds.json}", "data[0].paragraphs[0] must be an object"),
    ("score-squad-answer-start-string", "score squad1 --data {squad_start_string.json} "
     "--predictions {squad_preds.json}", "must be an integer"),
    ("score-squad-no-context", "score squad1 --data {squad_no_context.json} --predictions {squad_preds.json}",
     "context"),
    ("score-squad-preds-list", "score squad1 --data {squad_good.json} --predictions {squad_list.json}", "object"),
    ("score-squad-preds-broken", "score squad1 --data {squad_good.json} --predictions {squad_broken.json}", "JSON"),
    ("score-gold-is-folder", "score mrpc --data {adir} --predictions {preds.tsv}", "adir"),
    # table
    ("table-unknown-experiment", "table ablation_nps --results {tmp}/results", "did you mean"),
    ("table-missing-results", "table ablation_nsp --results {tmp}/typo", "typo"),
    ("table-results-is-file", "table ablation_nsp --results {afile}", "afile"),
    ("table-unknown-scale", "table ablation_nsp --scale huge --results {tmp}/results", "huge"),
    ("table-record-only-status", "table ablation_nsp --results {tmp}/results", "only_status.json"),
    ("table-record-is-list", "table ablation_nsp --results {tmp}/list_results", "a.json"),
    ("table-record-broken-json", "table ablation_nsp --results {tmp}/broken_results", "a.json"),
    ("table-record-not-utf8", "table ablation_nsp --results {tmp}/bytes_results", "byte"),
    # check: the baseline first, nothing run
    ("check-missing-baseline", "check --baseline {tmp}/nope.json", "nope.json"),
    ("check-baseline-no-metrics", "check --baseline {baseline_no_metrics.json}", "metrics"),
    ("check-baseline-list", "check --baseline {baseline_list.json}", "metrics"),
    ("check-baseline-not-utf8", "check --baseline {baseline_bad.json}", "byte"),
    ("check-backend-no-module", "check --baseline {baseline_no_metrics.json} --backend no_such_module:X",
     "no_such_module"),
    # run
    ("run-unknown-experiment", "run ablation_nps --results {tmp}/r", "did you mean"),
    ("run-backend-no-module", "run ablation_nsp --results {tmp}/r --backend no_such_module:X", "no_such_module"),
    ("run-backend-no-attr", "run ablation_nsp --results {tmp}/r --backend bertbench.backend:Nope", "Nope"),
    ("run-results-is-file", "run ablation_nsp --results {afile} --backend bertbench.backend:Backend", "afile"),
    ("run-runs-is-file", "run ablation_nsp --results {tmp}/r --runs {afile} --backend bertbench.backend:Backend",
     "afile"),
    ("run-bad-shard", "run ablation_nsp --dry-run --shard 3/2 --results {tmp}/r", "shard"),
    ("run-unknown-variant", "run ablation_nsp --dry-run --only bret --results {tmp}/r", "bret"),
    ("run-zero-seeds", "run ablation_nsp --seeds 0 --results {tmp}/r", "seeds"),
    ("run-zero-jobs", "run ablation_nsp --jobs 0 --results {tmp}/r", "--jobs"),
    ("run-jobs-unknown-experiment", "run ablation_nps --jobs 2 --results {tmp}/r", "did you mean"),
    # pretrain: every check before TensorFlow
    ("pretrain-negative-lr", "pretrain --out {tmp}/p --set pretrain.learning_rate=-1e-4", "pretrain.learning_rate"),
    ("pretrain-zero-lr", "pretrain --out {tmp}/p --set pretrain.learning_rate=0", "pretrain.learning_rate"),
    ("pretrain-beta-above-one", "pretrain --out {tmp}/p --set pretrain.adam_beta_2=1.5", "pretrain.adam_beta_2"),
    ("pretrain-negative-decay", "pretrain --out {tmp}/p --set pretrain.weight_decay=-0.1", "pretrain.weight_decay"),
    ("pretrain-nan-lr", "pretrain --out {tmp}/p --set pretrain.learning_rate=nan", "pretrain.learning_rate"),
    ("pretrain-dropout-above-one", "pretrain --out {tmp}/p --set model.dropout=1.5", "model.dropout"),
    ("pretrain-zero-steps", "pretrain --out {tmp}/p --steps 0", "num_steps"),
    ("pretrain-unknown-setting-keeps-prefix", "pretrain --out {tmp}/p --set pretrain.learning_rat=1",
     "'pretrain.learning_rat'"),
    ("pretrain-wrong-type-keeps-prefix", "pretrain --out {tmp}/p --set model.num_layers=two", "model.num_layers"),
    ("pretrain-unknown-section", "pretrain --out {tmp}/p --set trainer.steps=1", "trainer.steps"),
    ("pretrain-unknown-preset", "pretrain --out {tmp}/p --model tiniest", "tiniest"),
    ("pretrain-unknown-objective", "pretrain --out {tmp}/p --objective nsp", "pretrain.objective"),
    ("pretrain-unknown-scale", "pretrain --out {tmp}/p --scale huge", "huge"),
    ("pretrain-missing-config", "pretrain --out {tmp}/p --config {tmp}/nope.toml", "nope.toml"),
    ("pretrain-malformed-config", "pretrain --out {tmp}/p --config {bad.toml}", "bad.toml"),
    ("pretrain-config-not-utf8", "pretrain --out {tmp}/p --config {bad.txt}", "byte 10"),
    ("list-experiment-not-utf8", "list --experiments {bad_experiments}", "byte"),
    ("pretrain-config-unknown-table", "pretrain --out {tmp}/p --config {unknown_table.toml}", "[nonsense]"),
    ("pretrain-missing-vocab", "pretrain --out {tmp}/p --vocab {tmp}/nope.txt", "nope.txt"),
    ("pretrain-vocab-not-utf8", "pretrain --out {tmp}/p --vocab {vocab_bad.txt}", "byte 31"),
    ("pretrain-missing-corpus", "pretrain --out {tmp}/p --corpus {tmp}/nope", "nope"),
    ("pretrain-empty-corpus", "pretrain --out {tmp}/p --corpus {empty.txt}", "empty"),
    ("pretrain-out-is-file", "pretrain --out {afile}", "afile"),
    ("pretrain-out-below-file", "pretrain --out {afile}/sub", "afile"),
    # pretrain-data
    ("pretrain-data-bad-masking", "pretrain-data --corpus sample --out {tmp}/d --masking 0.8,0.2", "--masking"),
    ("pretrain-data-zero-dupe", "pretrain-data --corpus sample --out {tmp}/d --dupe-factor 0", "dupe_factor"),
    ("pretrain-data-packed-nsp", "pretrain-data --corpus sample --out {tmp}/d --input-format doc_sentences",
     "input_format='doc_sentences'"),
    ("pretrain-data-zero-shards", "pretrain-data --corpus sample --out {tmp}/d --num-shards 0", "--num-shards"),
    ("pretrain-data-out-is-file", "pretrain-data --corpus sample --out {afile}", "afile"),
    ("pretrain-data-vocab-not-utf8", "pretrain-data --corpus sample --out {tmp}/d --vocab {vocab_bad.txt}", "byte"),
    ("pretrain-data-missing-corpus", "pretrain-data --corpus {tmp}/nope --out {tmp}/d", "nope"),
    # finetune
    ("finetune-unknown-task", "finetune --task mrcp --random-init --out {tmp}/f", "did you mean 'mrpc'"),
    ("finetune-no-init", "finetune --task mrpc --out {tmp}/f", "--random-init"),
    ("finetune-missing-init", "finetune --task mrpc --init {tmp}/nope --out {tmp}/f", "nope"),
    ("finetune-negative-lr", "finetune --task mrpc --random-init --lr -1 --out {tmp}/f", "finetune.learning_rate"),
    ("finetune-zero-batch", "finetune --task mrpc --random-init --batch-size 0 --out {tmp}/f", "batch_size"),
    ("finetune-dropout", "finetune --task mrpc --random-init --set finetune.dropout=2 --out {tmp}/f",
     "finetune.dropout"),
    ("finetune-model-set-needs-random-init", "finetune --task mrpc --init {adir} --set model.dropout=0 "
     "--out {tmp}/f", "model."),
    ("finetune-out-is-file", "finetune --task mrpc --random-init --out {afile}", "afile"),
    ("finetune-predict-test-is-file", "finetune --task mrpc --random-init --out {tmp}/f --predict-test {afile}",
     "afile"),
    ("finetune-missing-data-dir", "finetune --task mrpc --random-init --out {tmp}/f --data-dir {tmp}/nope",
     "nope"),
    ("finetune-glue-not-utf8", "finetune --task mrpc --random-init --out {tmp}/f --data-dir {tmp}/glue_bad",
     "byte"),
    ("finetune-glue-empty", "finetune --task mrpc --random-init --out {tmp}/f --data-dir {tmp}/glue_empty",
     "train"),
    ("finetune-unknown-source", "finetune --task mrpc --random-init --out {tmp}/f --source hub", "finetune.source"),
    ("finetune-random-init-vocab-not-utf8", "finetune --task mrpc --random-init --vocab {vocab_bad.txt} "
     "--out {tmp}/f", "byte"),
    # features
    ("features-missing-input", "features --init {adir} --input {tmp}/nope.txt --out {tmp}/o.jsonl", "nope.txt"),
    ("features-input-not-utf8", "features --init {adir} --input {bad.txt} --out {tmp}/o.jsonl", "byte 10"),
    ("features-bad-layers", "features --init {adir} --input {afile} --out {tmp}/o.jsonl --layers a,b", "--layers"),
    ("features-out-is-folder", "features --init {adir} --input {afile} --out {adir}", "adir"),
    ("features-missing-init", "features --init {tmp}/nope --input {afile} --out {tmp}/o.jsonl", "nope"),
    ("features-zero-batch", "features --init {adir} --input {afile} --out {tmp}/o.jsonl --batch-size 0",
     "--batch-size"),
    # vocab
    ("vocab-missing-corpus", "vocab --corpus {tmp}/nope --out {tmp}/v.txt", "nope"),
    ("vocab-zero-size", "vocab --corpus sample --size 0 --out {tmp}/v.txt", "--size"),
    ("vocab-out-is-folder", "vocab --corpus sample --out {adir}", "adir"),
    ("vocab-missing-task-data", "vocab --corpus sample --task-data {tmp}/nope --out {tmp}/v.txt", "nope"),
    ("vocab-zero-max-lines", "vocab --corpus sample --max-lines 0 --out {tmp}/v.txt", "--max-lines"),
    # export, submission, bench, models, list, tasks
    ("export-missing-checkpoint", "export {tmp}/nope --to huggingface --out {tmp}/e", "nope"),
    ("export-out-is-file", "export {adir} --to huggingface --out {afile}", "afile"),
    ("submission-missing-folder", "submission {tmp}/nope --out {tmp}/g.zip", "nope"),
    ("submission-out-is-folder", "submission {adir} --out {adir}", "adir"),
    ("bench-zero-steps", "bench pretrain --steps 0", "--steps"),
    ("bench-unknown-model", "bench pretrain --model tiniest", "tiniest"),
    ("bench-json-is-folder", "bench pretrain --json {adir}", "adir"),
    ("bench-json-below-file", "bench pretrain --json {afile}/x.json", "afile"),
    ("models-zero-vocab", "models --vocab-size 0", "--vocab-size"),
    ("list-missing-experiments", "list --experiments {tmp}/nope", "nope"),
    ("tasks-missing-data-dir", "tasks --data-dir {tmp}/nope", "nope"),
    ("tasks-data-dir-is-file", "tasks --data-dir {afile}", "afile"),
    ("list-experiments-is-file", "list --experiments {afile}", "afile"),
    ("list-broken-experiment", "list --experiments {experiments}", "broken.toml"),
    ("run-unknown-scale", "run ablation_nsp --scale huge --results {tmp}/r", "huge"),
    ("run-zero-pretrain-seeds", "run ablation_nsp --pretrain-seeds 0 --results {tmp}/r", "pretrain-seeds"),
    ("run-dry-run-unknown-column", "run ablation_nsp --dry-run --column MRCP --results {tmp}/r", "MRCP"),
    ("finetune-zero-epochs", "finetune --task mrpc --random-init --epochs 0 --out {tmp}/f", "finetune.epochs"),
    ("finetune-zero-seeds", "finetune --task mrpc --random-init --seeds 0 --out {tmp}/f", "--seeds"),
    ("finetune-unknown-model", "finetune --task mrpc --random-init --model tiniest --out {tmp}/f", "tiniest"),
    ("finetune-diagnostic-without-predict-test", "finetune --task mnli --random-init --diagnostic {afile} "
     "--out {tmp}/f", "--predict-test"),
    ("finetune-max-train-negative", "finetune --task mrpc --random-init --set finetune.max_train_examples=-1 "
     "--out {tmp}/f", "finetune.max_train_examples"),
    ("pretrain-masking-two-values", "pretrain --out {tmp}/p --set pretrain.masking=[0.9,0.1]", "pretrain.masking"),
    ("pretrain-unknown-strategy", "pretrain --out {tmp}/p --strategy gpu", "--strategy"),
    ("run-multiworker", "run ablation_nsp --results {tmp}/r --strategy multiworker", "--strategy"),
    ("pretrain-heldout-one", "pretrain --out {tmp}/p --set pretrain.heldout_fraction=1", "heldout_fraction"),
    ("pretrain-negative-seed", "pretrain --out {tmp}/p --set pretrain.seed=-1", "pretrain.seed"),
    ("pretrain-epsilon-zero", "pretrain --out {tmp}/p --set model.layer_norm_epsilon=0", "model.layer_norm_epsilon"),
    ("pretrain-heads-not-dividing", "pretrain --out {tmp}/p --set model.num_heads=3", "model.num_heads"),
    ("features-short-max-seq-length", "features --init {adir} --input {afile} --out {tmp}/o.jsonl "
     "--max-seq-length 2", "--max-seq-length"),
    ("bench-unknown-what", "bench nothing", "nothing"),
    ("bench-seq-length-too-long", "bench pretrain --seq-length 4096", "--seq-length"),
    ("submission-folder-is-file", "submission {afile} --out {tmp}/g.zip", "afile"),
    ("check-calibrate-zero", "check --calibrate 0 --baseline {tmp}/new.json", "--calibrate"),
    ("check-calibrate-baseline-is-folder", "check --calibrate 3 --baseline {adir}", "adir"),
    ("run-reference-missing", "run ablation_nsp --results {tmp}/r --reference-checkpoint {tmp}/nope",
     "folder not found"),
    ("run-reference-not-a-checkpoint", "run ablation_nsp --results {tmp}/r --reference-checkpoint {adir}",
     "no BERT checkpoint"),
    ("run-reference-not-bert", "run ablation_nsp --dry-run --results {tmp}/r --reference-checkpoint {gpt2}",
     "model_type='gpt2'"),
]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    for name, content in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return root


def _argv(text, root):
    """The case's argv, each {name} replaced by the fixture's path ({tmp}: the fixtures' folder)."""
    return [re.sub(r"\{([^{}]+)\}", lambda m: str(root if m[1] == "tmp" else root / m[1]), part)
            for part in text.split()]


def _snapshot(root):
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def no_tensorflow(monkeypatch):
    """Importing TensorFlow, Keras or keras-hub fails: validation must not need them."""
    for name in ("tensorflow", "keras", "keras_hub", "tensorflow_text"):
        monkeypatch.setitem(sys.modules, name, None)


def _assert_one_error_line(err, command, fragment):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    prefix = f"bertbench {command}: error: " if command else "bertbench: error: "
    assert lines[0].startswith(prefix), err
    assert "Traceback" not in err and fragment in lines[0], err


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, fixtures, capsys, monkeypatch, no_tensorflow):
    _, text, fragment = case
    argv = _argv(text, fixtures)
    monkeypatch.chdir(fixtures)  # default output folders (runs/, glue.zip) would land here
    monkeypatch.delenv("BERTBENCH_DATA", raising=False)
    before = _snapshot(fixtures)
    try:
        code = cli.main(argv)
    except SystemExit as exit:  # argparse's usage errors (the real command line exits with the same code)
        code = exit.code
    _, err = capsys.readouterr()
    command = next((arg for arg in argv if arg in cli.COMMANDS), None)
    assert code == 2, err
    _assert_one_error_line(err, command, fragment)
    assert _snapshot(fixtures) == before


def test_every_command_has_bad_input_cases():
    covered = {c[1].split()[0] for c in CASES}
    assert set(cli.COMMANDS) <= covered and len(CASES) >= 60


def _run_cli(argv, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("BERTBENCH_DATA", "TF_CPP_MIN_LOG_LEVEL")}
    return subprocess.run([sys.executable, "-m", "bertbench", *argv], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.mark.parametrize("text, command, fragment", [
    ("frobnicate", None, "invalid choice"),
    ("pretrain --out {afile} --set pretrain.learning_rate=-1", "pretrain", "pretrain.learning_rate"),
    ("score squad1 --data {squad_qas_not_object.json} --predictions {squad_preds.json}", "score", "qas[0]"),
])
def test_the_real_stderr_holds_one_line(fixtures, text, command, fragment):
    before = _snapshot(fixtures)
    proc = _run_cli(_argv(text, fixtures), fixtures)
    assert proc.returncode == 2 and proc.stdout == ""
    _assert_one_error_line(proc.stderr, command, fragment)
    assert _snapshot(fixtures) == before


@pytest.mark.slow
def test_tensorflow_start_up_lines_do_not_bury_the_error(tmp_path):
    """A damaged checkpoint is found after TensorFlow has started: its log lines are filtered out."""
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    model = {"num_layers": 1, "hidden_dim": 8, "num_heads": 2, "vocabulary_size": 8, "max_sequence_length": 16}
    (ckpt / "bertbench_encoder.json").write_text(json.dumps({"model": model, "lowercase": True}))
    (ckpt / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"]) + "\n")
    (ckpt / "encoder.weights.h5").write_bytes(b"not HDF5")
    (tmp_path / "in.txt").write_text("a b\n")
    before = _snapshot(tmp_path)
    proc = _run_cli(["features", "--init", "ckpt", "--input", "in.txt", "--out", "out.jsonl"], tmp_path)
    assert proc.returncode == 2
    _assert_one_error_line(proc.stderr, "features", "encoder.weights.h5 is damaged")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("text, command", [
    ("pretrain --out {readonly}/run", "pretrain"),
    ("vocab --corpus sample --out {readonly}/v.txt", "vocab"),
    ("bench pretrain --json {readonly}/bench.json", "bench"),
    ("finetune --task mrpc --random-init --out {readonly}/f", "finetune"),
])
def test_read_only_locations_are_refused_before_any_work(fixtures, text, command, capsys, monkeypatch, no_tensorflow):
    """A folder the user cannot write to (simulated: the tests may run as root, who can write anywhere)."""
    readonly = fixtures / "readonly"
    real_access = os.access
    monkeypatch.setattr(files.os, "access", lambda path, mode: Path(path) != readonly and real_access(path, mode))
    before = _snapshot(fixtures)
    assert cli.main(_argv(text, fixtures)) == 2
    _assert_one_error_line(capsys.readouterr().err, command, f"{readonly} is not writable")
    assert _snapshot(fixtures) == before
