"""`bench tokenize`: tokenizer speed (MB/s of UTF-8 text in, ids out) of ours and of its peers,
measured side by side in one run on the same sentences, and how exact each is.

Tokenizers: ours (`WordPieceTokenizer.tokenize`, as pretraining calls it: the corpus's sentences,
8,192 a call, ids as Python lists), tensorflow-text's `FastBertTokenizer(lower_case_nfd_strip_accents=
True)` and, when installed, Hugging Face `tokenizers`' `BertWordPieceTokenizer` (single-threaded
unless TOKENIZERS_PARALLELISM says otherwise), each on the same vocabulary and batches, turned into
the same lists. Passes are interleaved batch by batch (the order rotates every batch) so machine
noise hits all alike; the figure is the median MB/s, and ours/FastBert is the median of the per-repeat ratios.
Exactness: lines whose ids differ from ours, and ours against the google-research reference port
(tests/reference_tokenization.py, present in a source checkout) on every sentence.
"""

import dataclasses
import gc
import importlib.util
import os
import statistics
import time
from pathlib import Path

from bertbench.bench.machine import machine_info
from bertbench.config import to_dict
from bertbench.errors import BertbenchError
from bertbench.text.corpus import read_documents
from bertbench.text.tokenizer import load_tokenizer, ragged_to_lists

try:  # optional: Hugging Face tokenizers is not a bertbench dependency
    from tokenizers import BertWordPieceTokenizer
except ImportError:
    BertWordPieceTokenizer = None

BATCH = 8192  # sentences per call: what `pretraining.instances.tokenize_documents` hands over
REFERENCE = Path(__file__).resolve().parents[2] / "tests" / "reference_tokenization.py"


@dataclasses.dataclass(frozen=True)
class TokenizeBench:
    corpus: str = "sample"  # the bundled Wikipedia sample, or a corpus file/folder
    vocab: str = "sample"  # the bundled uncased vocabulary, or a vocab.txt
    repeats: int = 7  # timed passes over the corpus per tokenizer, interleaved
    reference: bool = True  # check ours against the google-research port (slow: pure Python)

    def check(self):
        if self.repeats <= 0:
            raise BertbenchError(f"--repeats must be a positive integer, got {self.repeats}")


def corpus_sentences(corpus):
    """The sentences pretraining tokenizes, in its order (the same reader and sentence splitter)."""
    sentences = [s for document in read_documents(corpus) for s in document]
    if not sentences:
        raise BertbenchError(f"corpus {corpus} has no sentences; pass a corpus file or folder with text")
    return sentences


def tokenizers(tokenizer):
    """name -> function(list of sentences) -> list of id lists, ours first; notes on skipped peers."""
    import tensorflow as tf
    import tensorflow_text as tf_text

    fast_bert = tf_text.FastBertTokenizer(vocab=tokenizer.vocab, token_out_type=tf.int32,
                                          lower_case_nfd_strip_accents=tokenizer.lowercase)
    found = {"ours": tokenizer.tokenize,
             "fast_bert": lambda texts: ragged_to_lists(fast_bert.tokenize(tf.constant(texts, tf.string)))}
    notes = []
    if BertWordPieceTokenizer is None:
        notes.append("Hugging Face tokenizers not installed: skipped (pip install tokenizers)")
    else:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread, like the TF kernels
        hf = BertWordPieceTokenizer(tokenizer.vocab_path, lowercase=tokenizer.lowercase,
                                    strip_accents=tokenizer.lowercase, wordpieces_prefix="##")
        found["hf_tokenizers"] = lambda texts: [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    return found, notes


def run_all(fn, sentences):
    """Ids of every sentence, `BATCH` sentences a call."""
    out = []
    for i in range(0, len(sentences), BATCH):
        out.extend(fn(sentences[i:i + BATCH]))
    return out


def interleaved(fns, sentences, repeats):
    """Wall and CPU (this process's) seconds of each tokenizer's pass over `sentences`, `repeats`
    times. Every batch is tokenized by
    all of them back to back, the order rotated from batch to batch (A B C, B C A, ...), so that a
    burst of load from another process hits all alike."""
    names, times = list(fns), {name: {"wall": [], "cpu": []} for name in fns}
    batches = [sentences[i:i + BATCH] for i in range(0, len(sentences), BATCH)]
    turn = 0
    for _ in range(repeats):
        wall, cpu = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0)
        for batch in batches:
            for name in names[turn % len(names):] + names[:turn % len(names)]:
                start, start_cpu = time.perf_counter(), time.process_time()
                fns[name](batch)
                wall[name] += time.perf_counter() - start
                cpu[name] += time.process_time() - start_cpu
            turn += 1
        for name in names:
            times[name]["wall"].append(wall[name])
            times[name]["cpu"].append(cpu[name])
    return times


def reference_ids(tokenizer, sentences):
    """The google-research port's ids of every sentence, or None outside a source checkout."""
    if not REFERENCE.is_file():
        return None
    spec = importlib.util.spec_from_file_location("reference_tokenization", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reference = module.FullTokenizer(tokenizer.vocab_path, do_lower_case=tokenizer.lowercase,
                                     max_input_chars_per_word=tokenizer.max_chars_per_word)
    return [reference.ids(s) for s in sentences]


def bench_tokenize(opts, log=print):
    """Run the whole `bench tokenize` measurement; returns the JSON-ready result dict."""
    opts.check()
    tokenizer = load_tokenizer(opts.vocab)
    sentences = corpus_sentences(opts.corpus)
    megabytes = sum(len(s.encode("utf-8")) for s in sentences) / 1e6
    fns, notes = tokenizers(tokenizer)
    result = {"benchmark": "tokenize", "options": to_dict(opts), "machine": machine_info(),
              "load_average_before": os.getloadavg(), "corpus": {
                  "sentences": len(sentences), "megabytes": megabytes, "batch_sentences": BATCH,
                  "non_ascii_sentences": sum(not s.isascii() for s in sentences)},
              "vocabulary": {"path": tokenizer.vocab_path, "size": tokenizer.vocabulary_size,
                             "lowercase": tokenizer.lowercase}, "notes": notes,
              "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM")}
    log(f"warm-up: one pass of {', '.join(fns)} over {len(sentences):,} sentences ({megabytes:.2f} MB) ...")
    ids = {name: run_all(fn, sentences) for name, fn in fns.items()}
    log(f"timing: {opts.repeats} interleaved passes each ...")
    gc.collect()
    gc.disable()  # as timeit: a collection would be charged to whichever tokenizer made it due
    try:
        times = interleaved(fns, sentences, opts.repeats)
    finally:
        gc.enable()
    result["load_average_after"] = os.getloadavg()
    result["tokenizers"] = {name: {
        "median_mb_per_s": megabytes / statistics.median(t["wall"]), "best_mb_per_s": megabytes / min(t["wall"]),
        "median_cpu_mb_per_s": megabytes / statistics.median(t["cpu"]), "seconds": t["wall"], "cpu_seconds": t["cpu"],
        "lines_differing_from_ours": sum(a != b for a, b in zip(ids[name], ids["ours"]))} for name, t in times.items()}
    for clock, key in (("wall", ""), ("cpu", "_cpu")):
        per_repeat = [f / o for o, f in zip(times["ours"][clock], times["fast_bert"][clock], strict=True)]
        result[f"repeat{key}_ratios_ours_over_fast_bert"] = per_repeat
        result[f"ratio{key}_ours_over_fast_bert"] = statistics.median(per_repeat)
    result["reference"] = check_reference(tokenizer, sentences, ids, opts.reference, log)
    return result


def check_reference(tokenizer, sentences, ids, wanted, log):
    """Lines of each tokenizer that differ from the google-research port (None: not checked)."""
    if not wanted:
        return {"checked": False, "why": "--no-reference"}
    log("exactness: the google-research reference port on every sentence (pure Python) ...")
    reference = reference_ids(tokenizer, sentences)
    if reference is None:
        return {"checked": False, "why": f"{REFERENCE} not found (run from a source checkout)"}
    return {"checked": True, "lines": len(sentences), "lines_differing": {
        name: sum(a != b for a, b in zip(got, reference)) for name, got in ids.items()}}


def format_report(result):
    """A readable table of a `bench tokenize` result."""
    c, v, mach = result["corpus"], result["vocabulary"], result["machine"]
    lines = [f"bench tokenize: {c['sentences']:,} sentences ({c['megabytes']:.2f} MB UTF-8, "
             f"{c['non_ascii_sentences']:,} with non-ASCII), {c['batch_sentences']:,} a call; vocabulary "
             f"{Path(v['path']).name} ({v['size']:,}, {'uncased' if v['lowercase'] else 'cased'})",
             f"machine: {mach['cpu_model']}, {mach['cpu_cores']} cores, TF {mach['tensorflow']}; load average "
             f"{result['load_average_before'][0]:.1f} before, {result['load_average_after'][0]:.1f} after", ""]
    ref = result["reference"]
    header = ["tokenizer", "MB/s (median)", "MB/s (best)", "CPU MB/s (median)", "lines != ours"] + (["lines != reference"] if ref["checked"] else [])
    rows = [[name, f"{t['median_mb_per_s']:,.1f}", f"{t['best_mb_per_s']:,.1f}", f"{t['median_cpu_mb_per_s']:,.1f}",
             f"{t['lines_differing_from_ours']:,}"]
            + ([f"{ref['lines_differing'][name]:,}"] if ref["checked"] else [])
            for name, t in result["tokenizers"].items()]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = lambda cells: "  ".join(x.ljust(w) if k == 0 else x.rjust(w) for k, (x, w) in enumerate(zip(cells, widths)))
    lines += [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows] + [""]
    repeats = ", ".join(f"{x:.3f}" for x in result["repeat_ratios_ours_over_fast_bert"])
    lines.append(f"ours/FastBertTokenizer speed ratio: {result['ratio_ours_over_fast_bert']:.3f} (median over "
                 f"repeats: {repeats}); by CPU time {result['ratio_cpu_ours_over_fast_bert']:.3f}")
    lines.append(f"exact: ours differs from the google-research reference on {ref['lines_differing']['ours']:,} of "
                 f"{ref['lines']:,} lines" if ref["checked"] else f"exactness not checked: {ref['why']}")
    return "\n".join(lines + result["notes"])
