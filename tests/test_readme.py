"""Every command of the README's ```bash blocks runs as written, from a fresh clone's root, and does
something useful; long ones at a reduced size (flags appended, never changed).

The clone is simulated in a temporary folder: the package and experiments linked, the committed
`results/` copied (commands may write there), `../shared` linked when it exists. Skipped: `pip
install` lines, the main job `run ablation_nsp` and `check` (CI runs `check`: the same job), and
commands that read `../shared/data` when it is absent.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# appended to commands (by their first words) to keep the test short; the README's own flags stay
REDUCED = {
    ("vocab",): ["--max-lines", "300"],
    ("pretrain-data",): ["--max-documents", "8", "--dupe-factor", "1"],
    ("pretrain",): ["--steps", "12", "--set", "pretrain.log_every=4", "--quiet"],
    ("finetune",): ["--epochs", "1", "--set", "finetune.max_train_examples=64", "--quiet"],
    ("bench", "pretrain"): ["--steps", "2", "--warmup", "1", "--rounds", "1", "--batch-size", "4",
                            "--seq-length", "32", "--profile-steps", "1", "--matmul-size", "128",
                            "--matmul-repeats", "1", "--pipeline-batches", "2",
                            "--peer-precision", "same"],  # the peer once, not in both precisions
}
SKIPPED = {("run", "ablation_nsp"): "the main job: CI runs it as `check`", ("check",): "CI runs it"}
# TensorFlow's start-up noise and the warnings a newcomer used to see (issue: quiet logs)
NOISE = re.compile(r"cuInit|absl::InitializeLog|oneDNN|cpu_feature_guard|Gradients do not exist|retracing")


def readme_commands(text):
    """The lines of the README's ```bash blocks, in order (blank lines dropped)."""
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def _bertbench_words(argv):
    """The subcommand and its positional words ('bench', 'pretrain'), for a `python -m bertbench` line."""
    return tuple(word for word in argv[3:] if not word.startswith("-"))[:2]


def plan(line):
    """(argv or None for a shell line, skip reason or None)."""
    if line.startswith("pip "):
        return None, "installs packages"
    if not line.startswith("python -m bertbench "):
        return None, None
    argv = shlex.split(line, comments=True)
    words = _bertbench_words(argv)
    if "--dry-run" not in argv:
        for key, reason in SKIPPED.items():
            if words[:len(key)] == key and (key != ("run", "ablation_nsp") or len(words) == 2):
                return argv, reason
    if "../shared/data" in line and not (SHARED / "data").is_dir():
        return argv, "needs ../shared/data"
    for key, extra in sorted(REDUCED.items(), key=lambda kv: -len(kv[0])):
        if words[:len(key)] == key:
            argv = argv + extra
            break
    return [sys.executable] + argv[1:], None


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    main = root / "main"
    main.mkdir()
    for name in ("bertbench", "experiments"):
        (main / name).symlink_to(REPO / name)
    shutil.copytree(REPO / "results", main / "results")
    if SHARED.is_dir():
        (root / "shared").symlink_to(SHARED)
    return main


def test_readme_commands_are_found():
    lines = readme_commands((REPO / "README.md").read_text(encoding="utf-8"))
    tour = [line for line in lines if line.startswith("python -m bertbench")]
    assert len(tour) >= 14
    for words in ("pretrain", "finetune", "vocab", "pretrain-data", "features", "score", "tasks"):
        assert any(_bertbench_words(shlex.split(line, comments=True))[:1] == (words,) for line in tour), words


@pytest.mark.slow
def test_every_readme_command_runs(clone):
    env = {k: v for k, v in os.environ.items() if k not in ("BERTBENCH_DATA", "BERTBENCH_EXPERIMENTS")}
    env["BERTBENCH_CACHE"] = str(clone.parent / "cache")
    ran, skipped = [], []
    for line in readme_commands((REPO / "README.md").read_text(encoding="utf-8")):
        argv, reason = plan(line)
        if reason:
            skipped.append((line, reason))
            continue
        proc = subprocess.run(argv if argv else ["bash", "-c", line], cwd=clone, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-3000:]}"
        assert not NOISE.search(proc.stderr), f"{line}: noisy stderr\n{proc.stderr[-3000:]}"
        if argv:
            assert proc.stdout.strip(), f"{line}: printed nothing"
        ran.append(line)
    assert len(ran) >= 14, skipped
    # what the tour's commands wrote is there and usable
    assert len((clone / "vocab.txt").read_text().splitlines()) > 1000
    assert list((clone / "data").glob("*.tfrecord"))
    for run in ("runs/tiny", "runs/tiny-records"):
        assert (clone / run / "encoder" / "encoder.weights.h5").is_file()
    assert (clone / "features.jsonl").read_text().count("\n") == 2
