"""Provenance of a run record: the code (git commit, dirty flag), package versions and hardware.

Cached per process where it cannot change while the process runs; accelerators are asked each time
(from TensorFlow only when it is already loaded: provenance never imports it).
"""

import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

from bertbench.model.precision import cpu_flags

PACKAGES = ("tensorflow", "keras", "keras-hub", "tensorflow-text", "numpy", "pandas")


@functools.lru_cache(maxsize=None)
def git_info(repo=None):
    """{"commit": sha or None, "dirty": bool or None} of the checkout holding bertbench.

    `dirty` is about the code that ran: changes under results/ (which runs themselves write) are
    not counted."""
    repo = repo or str(Path(__file__).resolve().parents[2])

    def git(*args):
        out = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None

    try:
        commit = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!results") if commit else None
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": None if status is None else bool(status)}


@functools.lru_cache(maxsize=None)
def package_versions():
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb():
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _accelerators():
    """GPU/TPU names: from TensorFlow when it is already loaded (never imported just for this),
    else from nvidia-smi when present."""
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        try:
            return [f"{d.device_type}:{tf.config.experimental.get_device_details(d).get('device_name', d.name)}"
                    for kind in ("GPU", "TPU") for d in tf.config.list_physical_devices(kind)]
        except Exception:  # device queries differ across TF builds; provenance must never fail a run
            pass
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
        return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []
    except (OSError, subprocess.SubprocessError):
        return []


# The widest matmul instructions a CPU has, best first: what its speed and "auto" precision follow. Machines of
# one model name and host name can differ here (seen: "AMD EPYC" on "vm" with and without avx512_bf16, 4x
# apart in pretraining), so records name it and the dry-run estimate matches on it.
CPU_ISAS = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")


def cpu_isa(flags):
    """The first of CPU_ISAS in `flags` (/proc/cpuinfo's), else "other"."""
    return next((isa for isa in CPU_ISAS if isa in flags), "other")


@functools.lru_cache(maxsize=None)
def _static_hardware():
    return {"cpu_model": _cpu_model(), "cpu_isa": cpu_isa(cpu_flags()), "cpu_cores": os.cpu_count(),
            "memory_gb": _memory_gb(), "hostname": socket.gethostname(), "platform": platform.platform()}


def this_cpu_isa():
    """This machine's `cpu_isa` (/proc/cpuinfo read once per process)."""
    return _static_hardware()["cpu_isa"]


def hardware():
    return {**_static_hardware(), "accelerators": _accelerators()}


def provenance():
    """git, package versions and hardware for a record."""
    return {"git": git_info(), "packages": package_versions(), "hardware": hardware()}
