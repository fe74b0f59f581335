"""What a benchmark's figures belong to: the commit, the processor, the libraries and the BLAS.

Every script in this folder prints ``machine_line()`` above its table and stores ``describe()``
in its results/*.json, so a figure is never quoted without the machine that produced it. Speeds
and even last bits differ between an Intel with AVX-512 and an AMD with only AVX2.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _commit(checkout: Path = ROOT) -> str:
    """The commit of the git checkout holding ``checkout`` (this repository by default), marked
    when its code has uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True,
                                check=True).stdout.strip()
        # Results files written by earlier runs are not code: they do not make the tree dirty.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)benchmarks/results"], cwd=checkout, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (" with uncommitted changes" if dirty else "")


def handgrad_source() -> dict:
    """Where the imported handgrad came from (PYTHONPATH may point at another checkout, to time
    an older commit with today's script) and that checkout's commit."""
    import handgrad

    path = Path(handgrad.__file__).resolve().parent
    return {"path": str(path), "commit": _commit(path)}


class Stopwatch:
    """Seconds spent inside functions, summed by name: ``f = watch.timed("name", f)`` wraps f,
    and ``watch.totals`` holds the sums (the per-layer breakdowns)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def timed(self, name: str, fn):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            result = fn(*args, **kwargs)
            self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - started
            return result
        return wrapper


def _processor() -> dict:
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2" if flags else "unknown"
    disabled = os.environ.get("NPY_DISABLE_CPU_FEATURES")
    return {"name": name, "vector_extensions": vector, "cores": os.cpu_count(),
            "numpy_disabled_features": disabled or None}


def _blas() -> str:
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except (TypeError, KeyError, AttributeError):  # NumPy < 1.26 has no dict mode
        return "unknown"


def describe() -> dict:
    import handgrad

    machine = {"commit": _commit(), "processor": _processor(), "python": sys.version.split()[0],
               "platform": platform.platform(), "handgrad": handgrad.__version__, "numpy": np.__version__,
               "blas": _blas(), "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
    try:
        import torch

        machine["torch"] = torch.__version__
        machine["torch_blas"] = "MKL" if torch.backends.mkl.is_available() else "other"
    except ImportError:
        machine["torch"] = None
    return machine


def machine_line(machine: dict | None = None) -> str:
    m = machine or describe()
    p = m["processor"]
    torch = f", PyTorch {m['torch']}" if m.get("torch") else ""
    return (f"machine: {p['name']} ({p['vector_extensions']}, {p['cores']} cores), Python {m['python']}, "
            f"NumPy {m['numpy']} with {m['blas']}{torch}; commit {m['commit'][:12]}")


def ms_per_step_in_turns(blocks: dict, rounds: int, steps: int, pause: float = 0.3) -> dict:
    """``{name: [ms per step, one per round]}`` for ``blocks``, ``{name: run}`` where ``run()``
    runs one block of ``steps`` steps: each block once to warm up (allocations, thread pools),
    then ``rounds`` rounds in which every block runs once after ``pause`` seconds (another
    runner's BLAS and OpenMP threads spin on for a moment and would steal its cores), the order
    reversed every other round."""
    for run in blocks.values():
        run()
    ms = {name: [] for name in blocks}
    for round_ in range(rounds):
        for name, run in list(blocks.items())[:: -1 if round_ % 2 else 1]:
            time.sleep(pause)
            started = time.perf_counter()
            run()
            ms[name].append(1000 * (time.perf_counter() - started) / steps)
    return ms


def write_results(path, results: dict) -> Path:
    """Write ``results`` with the machine description as JSON, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": describe(), "handgrad_source": handgrad_source(),
               **{k: v for k, v in results.items() if k not in ("machine", "handgrad_source")}}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2)
    os.chmod(tmp, 0o644)
    try:
        os.replace(tmp, path)
    except OSError as error:  # a folder or unwritable --json after a long run: keep what was measured
        raise SystemExit(f"could not write {path} ({error.strerror}); the results are in {tmp}") from None
    return path
