"""MkDocs hooks: pages made from what the repository already holds, so they never drift.

Markers a page may hold, each replaced when the site is built:

* ``<!-- CLI HELP -->``: ``handgrad --help`` and every command's ``--help``, from the parser.
* ``<!-- BENCHMARKS -->``: every ``benchmarks/results/*.json``, each under a heading of its name.
* ``<!-- BENCHMARK name.json -->``: one of them, where a topic page discusses it.
* ``<!-- INCLUDE name -->``: a text file of ``docs/`` as a code block (the trace that
  ``benchmarks/make_figures.py`` writes).
* ``<!-- CHANGELOG -->``: CHANGELOG.md.
* ``{{ name.json | key/path | format }}``: one figure of a results file, for prose: the value at
  that path (list items by index, ``-1`` the last), formatted with Python's format spec
  (``,.0f``, ``.4f``, ...).

Every table says which JSON file it comes from, and the commit and machine recorded in it. A
marker or figure that names a file or key that does not exist stops the build.

The docstrings of ``src/handgrad`` cite objects with Sphinx roles (``:class:`Sequential```,
``:meth:`call_child```, ``:func:`handgrad.fit```, ``:data:`...```), which Markdown would print raw.
``SphinxRoles``, a Griffe extension (mkdocs.yml lists it under the mkdocstrings handler's
``extensions``), rewrites every docstring of the package once Griffe has loaded it, before
mkdocstrings renders anything, so the sources keep their roles:

* the target is resolved relative to the documented object (its members, inherited ones included,
  then its class's, its module's, the parent packages'), then as a full dotted path, then as the one
  object of the package whose path ends with it (a name two objects share stays unresolved); as in
  Sphinx, ``~a.b.C`` shows ``C``, ``title <target>`` shows the title, ``!name`` never links;
* a resolved role becomes ``<autoref identifier="CANONICAL.PATH" optional>`title`</autoref>``:
  mkdocs-autorefs links it to whichever reference page renders that object (mkdocstrings registers
  each object's canonical path beside its heading id) and, where no page does, prints the plain
  code span, so an undocumented target never breaks the strict build; an unresolved role is the code
  span alone. Fenced blocks and doctest lines are left as written.
"""

from __future__ import annotations

import fnmatch
import json
import re
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import griffe
except ImportError:  # without the docs extra: the page markers still work, the roles need Griffe
    griffe = None

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RESULTS = ROOT / "benchmarks" / "results"
CLI_MARKER = "<!-- CLI HELP -->"
ALL_BENCHMARKS_MARKER = "<!-- BENCHMARKS -->"
BENCHMARK_MARKER = re.compile(r"<!-- BENCHMARK ([\w.-]+\.json) -->")
INCLUDE_MARKER = re.compile(r"<!-- INCLUDE ([\w.-]+) -->")
CHANGELOG_MARKER = "<!-- CHANGELOG -->"
FIGURE = re.compile(r"\{\{\s*([\w.-]+\.json)\s*\|\s*([^|}]+?)\s*\|\s*([^|}]*?)\s*\}\}")


# --- the command line ------------------------------------------------------------------------------


def cli_help() -> str:
    """``handgrad --help`` and then each command's help, as code blocks under headings."""
    import argparse

    from handgrad.cli import build_parser

    parser = build_parser()
    parts = ["## handgrad", "```text", parser.format_help().rstrip(), "```"]
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        parts += [f"## handgrad {name}", "```text", sub.format_help().rstrip(), "```"]
    return "\n\n".join(parts)


# --- results files -----------------------------------------------------------------------------------


def load_result(name: str) -> dict:
    path = RESULTS / name
    if not path.is_file():
        raise ValueError(f"docs: benchmarks/results/{name} does not exist")
    return json.loads(path.read_text(encoding="utf-8"))


def lookup(data, path: str, where: str):
    """The value at ``path`` ("rows/0/accuracy") of ``data``; ValueError naming ``where``."""
    value = data
    for key in path.split("/"):
        key = key.strip()
        if isinstance(value, dict) and key not in value:  # keys may start with spaces ("  conv im2col")
            key = next((k for k in value if k.strip() == key), key)
        try:
            value = value[int(key)] if isinstance(value, list) else value[key]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ValueError(f"docs: {where} has no {path!r} (stopped at {key!r})") from None
    return value


def figure(match: re.Match) -> str:
    name, path, spec = match.group(1), match.group(2), match.group(3)
    value = lookup(load_result(name), path, f"benchmarks/results/{name}")
    try:
        return format(value, spec)
    except (TypeError, ValueError) as error:
        raise ValueError(f"docs: {name} {path!r} = {value!r} cannot be formatted as {spec!r}: {error}") from None


def short_commit(commit: str) -> str:
    """``"8cedcc2ab6..."`` -> ``"`8cedcc2`"``, keeping a note such as "with uncommitted changes"."""
    sha, _, rest = commit.partition(" ")
    return f"`{sha[:7]}`" + (f" {rest}" if rest else "")


def machine_line(machine: dict) -> str:
    """The commit and machine a results file records, in one line."""
    processor = machine.get("processor") or {}
    cpu = ", ".join(str(part) for part in (processor.get("name"), processor.get("vector_extensions")) if part)
    if processor.get("cores"):
        cpu += f", {processor['cores']} cores"
    if processor.get("numpy_disabled_features"):
        cpu += f" (NumPy CPU features disabled: {processor['numpy_disabled_features']})"
    libraries = f"Python {machine.get('python', '?')}, NumPy {machine.get('numpy', '?')}"
    if machine.get("blas"):
        libraries += f" ({machine['blas']})"
    if machine.get("torch"):
        libraries += f", PyTorch {machine['torch']}" + (f" ({machine['torch_blas']})" if machine.get("torch_blas") else "")
    threads = ", ".join(f"{k}={v}" for k, v in (machine.get("threads") or {}).items() if v is not None)
    parts = [f"commit {short_commit(machine.get('commit', 'unknown'))}", cpu, libraries] + ([threads] if threads else [])
    return "; ".join(parts)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def acc(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def ms_spread(runs: list) -> str:
    return f"{statistics.median(runs):.2f} ({min(runs):.2f}-{max(runs):.2f})"


def accuracy(data: dict) -> list[str]:
    rows = []
    for row in data["rows"]:
        spread = f"{row['min']:.4f}-{row['max']:.4f}" if "min" in row else ""
        if "seconds_per_epoch" in row:
            time = f"{row['seconds_per_epoch']:.2f} s per epoch"
        elif "seconds" in row:
            time = f"{row['seconds']:.1f} s" + (f" ({row['steps']:,} steps)" if "steps" in row else "")
        else:
            time = ""
        rows.append([row["run"], acc(row["accuracy"]), spread, time])
    return [table(["run", "test accuracy (mean)", "lowest-highest", "time"], rows)]


def convnet_accuracy(data: dict) -> list[str]:
    rows = [[row["run"], row["epochs"], acc(row["accuracy"]), acc(row.get("best_epoch_accuracy")),
             f"{row['seconds_per_epoch']:.2f}"] for row in data["rows"]]
    out = [table(["run", "epochs", "test accuracy after the last epoch", "best epoch's", "s per epoch"], rows)]
    for row in data["rows"]:
        if row.get("per_epoch"):
            out.append(f"{row['run']}, test accuracy after each epoch: "
                       + ", ".join(f"{a:.4f}" for a in row["per_epoch"]) + ".")
    return out


def choose_defaults_search(data: dict) -> list[str]:
    grid = data["grid"]
    intro = (f"{data['folds']}-fold stratified cross-validation on the {data['training_samples']} training digits "
             f"(batch {data['batch_size']}; the test split is never read). Grid: hidden "
             + ", ".join("-".join(str(w) for w in h) for h in grid["hidden"])
             + f"; Adam lr {', '.join(f'{lr:g}' for lr in grid['lr'])}; constant rate for "
             + ", ".join(str(e) for e in grid["constant_epochs"]) + " epochs or a cosine over "
             + ", ".join(str(e) for e in grid["cosine_epochs"]) + f". Rule: {data['rule']}.")
    rows = []
    for rank, s in enumerate(data["settings"], 1):
        cells = [rank, s["hidden"], f"{s['lr']:g}", s["schedule"], s["epochs"], f"{s['val_accuracy']:.4f}",
                 f"{s['val_accuracy_std']:.4f}", f"{s['train_seconds']:.2f}"]
        if s == data["chosen"]:
            cells = [f"**{cell}**" for cell in cells]
        rows.append(cells)
    return [intro, table(["rank", "hidden", "Adam lr", "schedule", "epochs", "validation accuracy (mean of folds)",
                          "std", "s per fold"], rows)]


def choose_defaults_measure(data: dict) -> list[str]:
    rows = [[run["seed"], f"{run['test_accuracy']:.4f}", f"{run['seconds']:.1f}"] for run in data["runs"]]
    rows.append(["**mean**", f"**{data['mean_test_accuracy']:.4f}**", f"{data['mean_seconds']:.1f}"])
    return ["`handgrad train --seed S`, as shipped, read against the test split once:",
            table(["init seed", "test accuracy", "seconds (loading and saving included)"], rows),
            f"First line printed: `{data['runs'][0]['first_line']}`"]


SPEED_COLUMNS = ["handgrad", "PyTorch", "scikit-learn", "book-style NumPy", "fused NumPy floor"]


def speed(data: dict) -> list[str]:
    columns = [c for c in SPEED_COLUMNS if any(c in row["median"] for row in data["rows"])]
    rows = []
    for row in data["rows"]:
        cells = [f"{row['net']}, {row['batch']}"]
        cells += [f"{row['median'][c]:,.0f}" if c in row["median"] else "" for c in columns]
        rows.append(cells + [f"{row['ratio']:.2f}"])
    out = [("Samples per second of a full training step (forward, backward, SGD update), float32, median of "
           f"{len(data['rows'][0]['samples_per_second']['handgrad'])} alternating repeats:"),
           table(["net, batch"] + columns + ["handgrad / PyTorch"], rows)]
    ranges = data.get("mlp_ratio_ranges")
    if ranges:
        out.append("handgrad's speed over each, on the MLP rows: " + "; ".join(
            f"{name} {low:.2f}x-{high:.2f}x" for name, (low, high) in ranges.items()) + ".")
    for row in data["rows"]:
        if row.get("gflops") and data.get("gemm_peak_gflops"):
            out.append(f"The {row['net']} step runs at {row['gflops']:.1f} GFLOP/s, "
                       f"{row['gflops'] / data['gemm_peak_gflops']:.0%} of the {data['gemm_peak_gflops']:.1f} GFLOP/s "
                       "of a 2048 x 2048 float32 product in the same run.")
    memory = data.get("memory")
    if memory:
        mib = 2 ** 20
        estimate = memory["estimate"]
        out.append(f"Peak resident memory of one 784-1024-10 Adam epoch over 60,000 samples: "
                   f"{memory['peak_rss'] / mib:.0f} MiB, {memory['rss_before_training'] / mib:.0f} MiB before training; "
                   f"what must be held: data {estimate['data'] / mib:.1f} MiB, parameters + gradients + Adam state "
                   f"{estimate['params_grads_adam_state'] / mib:.1f} MiB, one batch of activations "
                   f"{estimate['one_batch_activations'] / mib:.1f} MiB.")
    reach = data.get("time_to_97")
    if reach:
        out.append("Time to 97 % test accuracy on MNIST (784-100-10, Adam 1e-3, batch 100, the same initial "
                   "weights and batch order): " + "; ".join(
                       f"{name} {r['seconds']:.2f} s ({r['steps']:,} steps)" for name, r in reach.items()) + ".")
    return out


def convnet_speed(data: dict) -> list[str]:
    out = []
    source = data.get("handgrad_source")
    if source:
        out.append(f"handgrad's source timed: commit {short_commit(source['commit'])}.")
    rows = [[row["model"], row.get("images", "uniform random images"), ms_spread(row["handgrad_runs_ms"]),
             ms_spread(row["torch_runs_ms"]), (f"{row['ratio']:.2f}x ({min(row['ratio_per_repeat']):.2f}x-"
             f"{max(row['ratio_per_repeat']):.2f}x)"), f"{row['repeats']} x {row['steps_per_repeat']}"]
            for row in data["rows"]]
    out += [(f"Milliseconds per training step (forward, backward, Adam), batch {data['rows'][0]['batch']}, float32: "
            "median and range over the repeats, the two libraries taking turns."),
            table(["network", "images", "handgrad ms", "PyTorch eager ms", "handgrad / PyTorch time",
                   "repeats x steps"], rows)]
    for row in data["rows"]:
        parts = row.get("breakdown_ms") or {}
        if parts:
            out += [f"Where handgrad's {row['model']} step goes (ms; indented: parts of the line above):",
                    table(["part", "ms"], [[name.replace("  ", "&nbsp;&nbsp;"), f"{ms:.2f}"]
                                           for name, ms in parts.items()])]
    floor = data.get("gemm_floor")
    if floor:
        out += [("DeepConvNet's six convolutions: the matrix products alone, with the shapes of the path each "
                "layer takes (ms):"),
                table(["layer", "filters", "channels", "map", "path", "forward", "dW", "dx", "GFLOP"],
                      [[c["layer"], c["filters"], c["channels"], "x".join(str(s) for s in c["map"]), c["path"],
                        f"{c['forward_ms']:.2f}", f"{c['dW_ms']:.2f}", f"{c['dx_ms']:.2f}", f"{c['gflop']:.3f}"]
                       for c in floor["layers"]])]
        line = (f"Together {floor['gemm_ms']:.1f} ms ({floor['gflop']:.2f} GFLOP at {floor['gflop_per_s']:.0f} GFLOP/s); "
                f"at this machine's 2048 x 2048 rate in the same run ({floor['peak_gflop_per_s']:.0f} GFLOP/s) "
                f"{floor['at_peak_ms']:.1f} ms; PyTorch's whole step in the same run: {floor['torch_step_ms']:.1f} ms.")
        if "im2col_per_image_ms" in floor:
            line += (f" The same products through im2col, one GEMM per image: {floor['im2col_per_image_ms']:.1f} ms "
                     f"({floor['im2col_gflop_per_s']:.0f} GFLOP/s).")
        out.append(line)
    reach = data.get("time_to_accuracy")
    if reach:
        out += [("SimpleConvNet trained until the test accuracy, checked every 100 steps, first reaches the target; "
                "both libraries from the same initial weights and batch order, taking turns:"),
                table(["library", "recipe", "reached", "at step", "test accuracy there", "seconds of training",
                       "ms per step"],
                      [[name, r.get("recipe", "Adam 1e-3"), "yes" if r["reached"] else "no", f"{r['steps']:,}",
                        f"{r['accuracy']:.4f}", f"{r['seconds']:.1f}",
                        f"{r['ms_per_step']:.2f}" if "ms_per_step" in r else "-"] for name, r in reach.items()])]
        histories = {name: dict(r["history"]) for name, r in reach.items() if r.get("history")}
        if histories:
            steps = sorted({s for h in histories.values() for s in h if s % 600 == 0})
            out += ["Test accuracy at the end of each epoch (600 steps):",
                    table(["step"] + list(histories), [[f"{s:,}"] + [acc(h.get(s)) for h in histories.values()]
                                                       for s in steps])]
    profile = data.get("torch_profile_ms")
    if profile:
        kinds = list(profile)
        ops = sorted(profile[kinds[0]], key=lambda op: -profile[kinds[0]][op])[:10]
        out += ["PyTorch's profiler on its SimpleConvNet step: the ten costliest operators (ms per step):",
                table(["operator"] + [f"{k} images" for k in kinds],
                      [[f"`{op}`"] + [f"{profile[k].get(op, 0):.2f}" for k in kinds] for op in ops])]
    return out


def seconds_spread(epochs: list) -> str:
    seconds = [e["seconds"] for e in epochs]
    return f"{statistics.median(seconds):.1f} ({min(seconds):.1f}-{max(seconds):.1f})"


def sequences(data: dict) -> list[str]:
    rows, curves = [], []
    for row in data["rows"]:
        ours, theirs = row["handgrad"], row["torch"]
        best = max(ours, key=lambda e: e["accuracy"])
        mid_ours = statistics.median(e["seconds"] for e in ours)
        mid_theirs = statistics.median(e["seconds"] for e in theirs)
        run = row["run"] + (f", handgrad's batch over {row['threads']} threads" if row.get("threads", 1) > 1 else "")
        rows.append([run, row["epochs"], acc(ours[-1]["accuracy"]), acc(theirs[-1]["accuracy"]),
                     f"{best['accuracy']:.4f} (epoch {best['epoch']})", seconds_spread(ours), seconds_spread(theirs),
                     f"{mid_ours / mid_theirs:.2f}x"])
        for name, epochs in (("handgrad", ours), ("PyTorch", theirs)):
            curves.append([row["run"], name, ", ".join(f"{e['accuracy']:.4f}" for e in epochs)])
    return [("Test accuracy after the last epoch (exact answers for seq2seq, generated greedily), and seconds per "
            "training epoch (median, and the range over the epochs), each PyTorch mirror started from the same "
            "weights on the same batches; the time ratio is of the medians:"),
            table(["run", "epochs", "handgrad", "PyTorch", "best epoch, handgrad", "s/epoch handgrad",
                   "s/epoch PyTorch", "time ratio"], rows),
            "Test accuracy after each epoch:",
            table(["run", "library", "accuracy after each epoch"], curves)]


def gpt(data: dict) -> list[str]:
    c = data["config"]
    speeds = data["tokens_per_second"]
    reference = speeds.get("PyTorch")
    return [(f"nanoGPT's CPU configuration: {c['n_layer']} layers, {c['n_head']} heads, {c['n_embd']} wide, context "
            f"{c['block_size']}, batch {c['batch']}, {c['steps']} steps; both from the same weights on the same batches; "
            f"handgrad's batch over {c.get('threads', 1)} thread{'s' if c.get('threads', 1) > 1 else ''}."),
            table(["step", "handgrad val loss", "PyTorch val loss"],
                  [[p["step"], f"{p['handgrad_val_loss']:.4f}", f"{p['torch_val_loss']:.4f}"] for p in data["curve"]]),
            table(["training", "tokens/s", "speed"],
                  [[name, f"{tps:,.0f}", f"{tps / reference:.2f}x" if reference else ""] for name, tps in speeds.items()]),
            "Generation, one sequence from 8 tokens up to a full context:",
            table(["setting", "tokens/s"], [[k, f"{v:,.0f}"] for k, v in data["generation_tokens_per_second"].items()]),
            "The sample (temperature 0.8, top-k 200, seed 0):",
            "```text\n" + data["sample"].rstrip() + "\n```"]


def gpt_breakdown(data: dict) -> list[str]:
    step = data["step_ms"]
    parts = sorted(data["breakdown_ms"].items(), key=lambda item: -item[1])
    batch = f" of {data['batch']} windows" if "batch" in data else ""
    return [f"{data['steps']} steps{batch} timed layer by layer: {step:.1f} ms per step with the timers in place.",
            table(["part", "ms per step", "share of the step"], [[k, f"{v:.2f}", f"{v / step:.0%}"] for k, v in parts]),
            (f"Memory: {data['parameters']:,} parameters; {data['state_mib']:.1f} MiB with their gradients and AdamW's "
            f"moments; the process peaks at {data['peak_rss_mib']:.0f} MiB.")]


def gpt_products(data: dict) -> list[str]:
    rows = [[name, f"{row['ms_per_step']:.2f}", f"{row['range_ms'][0]:.2f}-{row['range_ms'][1]:.2f}"]
            for name, row in data["products"].items()]
    return [(f"The {data['products_count']} matrix products of one training step alone, medians of "
             f"{data['rounds']} rounds of {data['block_steps']} steps, in turns with PyTorch's whole step:"),
            table(["setting", "ms per step", "range"], rows),
            f"1.2x PyTorch's throughput needs a step of at most {data['step_for_1_2x_pytorch_ms']:.2f} ms."]


def sklearn_compare(data: dict) -> list[str]:
    rows = []
    for row in data["rows"]:
        ours, theirs = row["handgrad"], row.get("scikit-learn")
        seeds = row["seeds"]
        states = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
        rows.append([row["dataset"], row["model"], row["epochs"], states, acc(ours["accuracy"]),
                     acc(theirs["accuracy"]) if theirs else "-", f"{ours['seconds']:.2f}",
                     f"{theirs['seconds']:.2f}" if theirs else "-",
                     f"{ours['seconds'] / theirs['seconds']:.2f}" if theirs else "-"])
    return ["Means over the random states; fit time only:",
            table(["data", "model", "epochs", "random states", "handgrad accuracy", "scikit-learn accuracy",
                   "handgrad fit s", "scikit-learn fit s", "time ratio"], rows)]


def book_scripts(data: dict) -> list[str]:
    def said(side: dict) -> tuple[str, str]:
        text = side["prints"] if side["status"] == "ok" else f"`{side['status']}`"
        return text.replace("|", "\\|"), f"{side['seconds']:.1f}"

    rows = [[f"`{s['script']}`", *said(s["book"]), *said(s["handgrad"])] for s in data["scripts"]]
    return [table(["script", "the book's code prints", "s", "handgrad book-run prints", "s"], rows)]


def distributed(data: dict) -> list[str]:
    units = {"mlp": "samples/s", "convnet": "samples/s", "deep-convnet": "samples/s", "lstm": "samples/s",
             "gpt": "tokens/s"}
    names = {"mlp": "MLP 784-100-10", "convnet": "SimpleConvNet", "deep-convnet": "DeepConvNet",
             "lstm": "LSTM 128, sequential MNIST", "gpt": "GPT 4x4x128"}
    settings_in_order = ("1 rank, 1 thread", "1 rank, 2 threads", "1 rank, batch over 2 threads",
                         "2 ranks, 1 thread each", "PyTorch, 2 threads")
    rows, checks = [], []
    for model, settings in data["measured"].items():
        label = names.get(model, model)
        ratios = settings.get("throughput_over_pytorch", {})  # older files have no PyTorch setting
        for setting in settings_in_order:
            s = settings.get(setting)
            if s is None:
                continue
            runs = s.get("step_s_runs")  # older files timed each setting once
            spread = f" ({min(runs) * 1e3:.2f}-{max(runs) * 1e3:.2f})" if runs and len(runs) > 1 else ""
            allreduce = (f"{s['allreduce_in_step_s'] * 1e3:.3f} / {s['allreduce_alone_s'] * 1e3:.3f} ms"
                         if "allreduce_in_step_s" in s else "")
            ratio = f"{ratios[setting]:.2f}x" if setting in ratios else ("1" if setting.startswith("PyTorch") else "")
            rows.append([label, setting, f"{s['step_s'] * 1e3:.2f} ms{spread}",
                         f"{s['throughput']:,.0f} {units.get(model, '/s')}", ratio, allreduce])
            label = ""
        check = settings.get("model_check")
        if check:
            checks.append(f"{names.get(model, model)} {check['predicted_2_rank_step_s'] * 1e3:.2f} ms predicted, "
                          f"{check['measured_2_rank_step_s'] * 1e3:.2f} measured")
    out = [table(["model", "setting", "step (range over rounds)", "throughput", "throughput / PyTorch's",
                  "all-reduce per step (in the step / alone)"], rows)]
    if checks:
        out.append("The cost model below at K = 2, with this machine's shared-memory all-reduce in place of the "
                   "network term: " + "; ".join(checks) + ".")
    model = data.get("cost_model")
    if model:
        ranks = [k for k in model["ranks"] if k > 1]
        rows = []
        for network, per_model in model["speedup"].items():
            net = model["networks"][network]
            label = f"{network} ({net['latency_s'] * 1e6:g} us, {net['bandwidth_bytes_per_s'] / 1e9:g} GB/s)"
            for name, speedups in per_model.items():
                mb = data["measured"][name]["1 rank, 1 thread"]["gradient_bytes"] / 1e6
                best = max(speedups, key=lambda k: speedups[k])
                rows.append([label, f"{names.get(name, name)} ({mb:.2f})"] + [f"{speedups[str(k)]:.2f}" for k in ranks]
                            + [best])
                label = ""
        out += [("On paper, strong scaling (the global batch fixed) with a ring all-reduce: "
                "`T(K) = C ceil(B/K)/B + 2(K-1)(alpha + n/(K beta))`, C the measured 1-thread step, n the gradient "
                "bytes, alpha the latency and beta the bandwidth; the speed-up C / T(K):"),
                table(["network", "model (gradient MB)"] + [f"K={k}" for k in ranks] + ["best K"], rows)]
    return out


def makemore_reference(data: dict) -> list[str]:
    rows = []
    for row in data["rows"]:
        curve = row["test_curve"]
        best = row["best_test_loss"]
        rows.append([row["seed"], f"{best['test_loss']:.4f}", f"{best['step']:,}", f"{curve[-1]['test_loss']:.4f}",
                     f"{row['steps']:,}", " ".join(f"{point['test_loss']:.3f}" for point in curve)])
    return [table(["seed", "best test loss", "at step", "test loss at the end", "steps",
                   "test loss every 1,000 steps" if data["rows"] and data["rows"][0]["test_curve"][0]["step"] == 1000
                   else "test loss at each evaluation"], rows)]


def makemore(data: dict) -> list[str]:
    def both(row, split):
        value = row.get(f"{split}_loss")
        return f"{value['handgrad']:.4f} ({value['PyTorch']:.4f})" if value else ""

    rows, samples = [], []
    for row in data["rows"]:
        speed = row["steps_per_second"]
        rows.append([row["model"], row["seed"], f"{row['steps']:,}", both(row, "train"), both(row, "dev"),
                     both(row, "test"), f"{speed['handgrad']:,.0f}", f"{speed['PyTorch']:,.0f}",
                     f"{row['speed_ratio']:.2f}x", f"{row['share_new']:.0%}"])
        samples.append([row["model"], ", ".join(row["samples"])])
    return [("Each model beside its PyTorch mirror from the same initial weights on the same batches: the loss over "
             "every example of each split, handgrad's (the mirror's); training steps per second, timed in blocks "
             f"of {data['block_steps']} steps alternating which runner goes first; the share of 1,000 drawn names "
             "that are in neither the training nor the held-out sets:"),
            table(["model", "seed", "steps", "train loss", "dev loss", "test loss", "steps/s handgrad",
                   "steps/s PyTorch", "speed", "new names"], rows),
            "The first ten names drawn from handgrad's model (seed as above):",
            table(["model", "names"], samples)]


def threads(data: dict) -> list[str]:
    rows = [[r["workload"], f"{r['seconds_per_step']['1'] * 1e3:.2f}", f"{r['seconds_per_step']['2'] * 1e3:.2f}",
             f"{r['ratio']:.2f}x"] for r in data["rows"]]
    return [(f"Each workload's steps timed both ways in alternating blocks ({data['rounds']} rounds, a "
             f"{data['pause_s']:g} s pause before each block), the median of each; the ratio is one thread's time "
             "over two threads' (above 1: the split is faster):"),
            table(["workload", "ms per step, 1 thread", "ms per step, batch over 2 threads", "ratio"], rows)]


def serve_load(data: dict) -> list[str]:
    rows = [[r["model"], r["input"], r["clients"], f"{r['requests_per_second']:.0f}", f"{r['p50_ms']:.1f}",
             f"{r['p99_ms']:.1f}", f"{r['answer_kib']:.0f}"] for r in data["rows"]]
    return [(f"`handgrad serve --copies {data['copies']}` as its own process, clients back to back on the same "
            f"machine, {data['seconds_per_row']:g} s per row:"),
            table(["model", "input", "clients", "requests/s", "p50 ms", "p99 ms", "answer KiB"], rows)]


def lstm_breakdown(data: dict) -> list[str]:
    ms, runs = data["ms_per_step"], data["ms_per_step_runs"]
    rows = [[name, f"{value:.2f}", f"{min(runs[name]):.2f}-{max(runs[name]):.2f}"] for name, value in ms.items()]
    rows.append(["handgrad's step without its recurrent products",
                 f"{data['handgrad_step_without_recurrent_products_ms']:.2f}", ""])
    return [(f"Milliseconds per training step (batch 100, 28 time steps), the median of {data['rounds']} rounds of "
             f"{data['steps_per_block']} steps, taking turns:"),
            table(["part", "ms per step", "range"], rows)]


def normal_cdf_float32(data: dict) -> list[str]:
    ulp, before = data["float32_ulp"], data["cody_in_float32_ulp"]
    return [(f"float32 Phi(x) = t exp(-x^2 / 2) P(t) with t = 1 / (1 + {data['c']} |x|), P of degree {data['degree']}: "
             f"the fit's largest relative error is {data['fit_relative_error']:.1e} (float64). Largest error of the "
             "float32 result against the float64 Phi, in float32 ulp:"),
            table(["x in", "float32 formula", "Cody's float64 formula run in float32"],
                  [[key, f"{ulp[key]:.2f}", f"{before[key]:.2f}"] for key in ulp])]


def generic(data: dict) -> list[str]:
    """Any other results file: its scalar values by path."""
    leaves = []

    def walk(value, path):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}/{key}" if path else str(key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}/{i}")
        else:
            leaves.append([f"`{path}`", value])

    walk({k: v for k, v in data.items() if k != "machine"}, "")
    return [table(["key", "value"], leaves[:60])]


#: How each results file is shown (first pattern that matches) and the script that writes it.
RENDERERS = [
    ("accuracy.json", accuracy, "python benchmarks/accuracy.py --data-dir ../shared/data"),
    ("convnet_accuracy.json", convnet_accuracy, "python benchmarks/convnet_accuracy.py --data-dir ../shared/data"),
    ("choose_defaults_search.json", choose_defaults_search, "python benchmarks/choose_defaults.py search"),
    ("choose_defaults_measure.json", choose_defaults_measure, "python benchmarks/choose_defaults.py measure"),
    ("speed_convnet_row.json", speed,
     "python benchmarks/speed.py --skip-mnist --json benchmarks/results/speed_convnet_row.json"),
    ("speed*.json", speed, "python benchmarks/speed.py --data-dir ../shared/data"),
    ("convnet_speed_latest.json", convnet_speed, ("python benchmarks/convnet_speed.py --repeats 9 --gemm-floor "
     "--data-dir ../shared/data --json benchmarks/results/convnet_speed_latest.json")),
    ("convnet_speed_at_*.json", convnet_speed, ("PYTHONPATH=<a checkout of that commit>/src python "
     "benchmarks/convnet_speed.py --repeats 5 --data-dir ../shared/data --json ...")),
    ("convnet_time_to_99.json", convnet_speed, ("python benchmarks/convnet_speed.py --models simple --repeats 3 "
     "--batches 10 --time-to 0.99 --data-dir ../shared/data --json benchmarks/results/convnet_time_to_99.json")),
    ("convnet_time_to_99_plain_adam.json", convnet_speed,
     "python benchmarks/convnet_speed.py --time-to 0.99 --recipe plain --data-dir ../shared/data --json ..."),
    ("convnet_torch_profile.json", convnet_speed,
     "python benchmarks/convnet_speed.py --models simple --torch-profile --data-dir ../shared/data --json ..."),
    ("convnet*.json", convnet_speed, "python benchmarks/convnet_speed.py"),
    ("sequences.json", sequences, "python benchmarks/sequences.py --data-dir ../shared/data"),
    ("sequences_lstm*.json", sequences, ("[NPY_DISABLE_CPU_FEATURES=\"X86_V4\"] python benchmarks/sequences.py --only lstm "
                                         "--data-dir ../shared/data --json ...")),
    ("gpt.json", gpt, "python benchmarks/gpt.py --data-dir ../shared/data"),
    ("gpt_breakdown.json", gpt_breakdown, "python benchmarks/gpt_breakdown.py --data-dir ../shared/data"),
    ("gpt_breakdown_rank.json", gpt_breakdown, ("OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/gpt_breakdown.py "
                                                "--data-dir ../shared/data --batch 6 --json ...")),
    ("gpt_products.json", gpt_products, "python benchmarks/gpt_breakdown.py --products --json ..."),
    ("sklearn_compare.json", sklearn_compare, "python benchmarks/sklearn_compare.py --data-dir ../shared/data"),
    ("book_scripts*.json", book_scripts, ("python benchmarks/book_scripts.py ../shared/book1 [--scripts ...] "
     "[--sides ...] --json ...")),
    ("distributed.json", distributed, "python benchmarks/distributed.py --data-dir ../shared/data"),
    ("distributed_long_blocks.json", distributed, ("python benchmarks/distributed.py --data-dir ../shared/data "
     "--block-times 2 --models convnet deep-convnet gpt --json benchmarks/results/distributed_long_blocks.json")),
    ("distributed_lstm*.json", distributed, ("[NPY_DISABLE_CPU_FEATURES=\"X86_V4\"] python benchmarks/distributed.py "
     "--data-dir ../shared/data --models lstm --repeats 5 [--block-times 2] --json ...")),
    ("serve_load.json", serve_load, "flock /tmp/handgrad-heavy.lock python benchmarks/serve_load.py"),
    ("makemore.json", makemore, "python benchmarks/makemore.py --data-dir ../shared/data --models mlp-bn wavenet"),
    ("makemore_seeds*.json", makemore, "python benchmarks/makemore.py --data-dir ../shared/data --models mlp-bn "
     "--seeds 2 --first-seed 1 --json ... (and wavenet --seeds 1 --first-seed 1)"),
    ("makemore_reference.json", makemore_reference, "python benchmarks/makemore_reference.py --data-dir ../shared/data"),
    ("makemore_zoo.json", makemore, ("python benchmarks/makemore.py --data-dir ../shared/data --models bigram "
                                     "mlp-words bow rnn gru transformer --steps 3000 --json benchmarks/results/makemore_zoo.json")),
    ("threads.json", threads, "python benchmarks/threads.py"),
    ("threads_avx2.json", threads, 'NPY_DISABLE_CPU_FEATURES="X86_V4" python benchmarks/threads.py --json ...'),
    ("threads_lstm.json", threads, ("python benchmarks/threads.py --only lstm-mnist lstm-digits lstm-mnist1d "
                                    "--rounds 9 --json benchmarks/results/threads_lstm.json")),
    ("gpt_block60.json", gpt, "python benchmarks/gpt.py --data-dir ../shared/data --block 60 --json ..."),
    ("gpt_avx2.json", gpt, 'NPY_DISABLE_CPU_FEATURES="X86_V4" python benchmarks/gpt.py --data-dir ../shared/data --json ...'),
    ("normal_cdf_float32.json", normal_cdf_float32, "python benchmarks/fit_normal_cdf.py"),
    ("lstm_breakdown.json", lstm_breakdown, "python benchmarks/lstm_breakdown.py --data-dir ../shared/data"),
    ("*.json", generic, None),
]


def benchmark(name: str) -> str:
    """One results file as Markdown: where it comes from, its machine, and its tables."""
    data = load_result(name)
    render, command = next((render, command) for pattern, render, command in RENDERERS
                           if fnmatch.fnmatch(name, pattern))
    head = f"From `benchmarks/results/{name}`"
    if command:
        head += f", written by `{command}`"
    head += ". " + (f"Recorded: {machine_line(data['machine'])}." if "machine" in data else "No machine recorded.")
    return "\n\n".join([head] + render(data))


def all_benchmarks() -> str:
    return "\n\n".join(f"## {path.name}\n\n{benchmark(path.name)}" for path in sorted(RESULTS.glob("*.json")))


# --- the hook ------------------------------------------------------------------------------------------


def include(match: re.Match) -> str:
    path = DOCS / match.group(1)
    if not path.is_file():
        raise ValueError(f"docs: cannot include docs/{match.group(1)}: no such file")
    return "```text\n" + path.read_text(encoding="utf-8").rstrip("\n") + "\n```"


def render(markdown: str) -> str:
    """A page's Markdown with every marker and figure filled in."""
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_help())
    if ALL_BENCHMARKS_MARKER in markdown:
        markdown = markdown.replace(ALL_BENCHMARKS_MARKER, all_benchmarks())
    if CHANGELOG_MARKER in markdown:
        changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
        markdown = markdown.replace(CHANGELOG_MARKER, changelog.split("\n", 1)[1])  # without its own title
    markdown = BENCHMARK_MARKER.sub(lambda m: benchmark(m.group(1)), markdown)
    markdown = INCLUDE_MARKER.sub(include, markdown)
    return FIGURE.sub(figure, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return render(markdown)


# --- Sphinx roles in docstrings (a Griffe extension) ---------------------------------------------------

#: A Python-domain Sphinx role and its text: ``:class:`~handgrad.layers.Layer```, ``:py:func:`fit```.
SPHINX_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|data|attr|exc|obj|const|type):`(?P<text>[^`]+)`")
CODE_LINE = (">>>", "...")   # doctest lines: shown as code, never rewritten
FENCE = ("```", "~~~")


def role_parts(text: str) -> tuple[str, str | None]:
    """A role's text -> (title shown, target to resolve or None): Sphinx's ``~``, ``!`` and
    ``title <target>`` forms, and ``name()`` for functions."""
    explicit = re.fullmatch(r"(?s)(.*?)\s*<([^<>]+)>", text)
    if explicit and explicit.group(1):
        title, target = explicit.group(1), explicit.group(2)
    else:
        target = text
        title = None
    no_link = target.startswith("!")
    target = target.lstrip("!")
    if title is None:
        title = target.lstrip("~").rsplit(".", 1)[-1] if target.startswith("~") else target
    target = target.lstrip("~.").removesuffix("()")
    return title, None if no_link else target


def rewrite_roles(docstring: str, resolve: Callable[[str], str | None]) -> str:
    """``docstring`` with each Sphinx role replaced: an optional autoref to ``resolve(target)``
    around the code span, or the code span alone where the target does not resolve."""

    def replace(match: re.Match) -> str:
        title, target = role_parts(match.group("text"))
        path = resolve(target) if target else None
        return f'<autoref identifier="{path}" optional>`{title}`</autoref>' if path else f"`{title}`"

    lines, fenced = [], False
    for line in docstring.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith(FENCE):
            fenced = not fenced
        elif not fenced and not stripped.startswith(CODE_LINE):
            line = SPHINX_ROLE.sub(replace, line)
        lines.append(line)
    return "\n".join(lines)


def _own_objects(obj) -> Iterator:
    """``obj`` and every object defined in it, recursively (imported names left out)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _own_objects(member)


def _canonical(obj) -> str | None:
    """Where ``obj`` (an object or an alias) is defined, or None for an alias that leads outside."""
    try:
        return obj.canonical_path
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _member_at(scope, dotted: str):
    """The object at ``dotted`` under ``scope`` (inherited members included), or None."""
    node = scope
    try:
        for name in dotted.split("."):
            node = node.all_members[name]
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    return node


_GriffeExtension = griffe.Extension if griffe is not None else object


class SphinxRoles(_GriffeExtension):
    """Griffe extension: the package's docstrings with their Sphinx roles made cross-references
    (see the module docstring)."""

    def on_package(self, *, pkg, loader, **kwargs) -> None:
        objects = list(_own_objects(pkg))
        everything = {obj.path for obj in objects}

        def resolver(obj) -> Callable[[str], str | None]:
            def resolve(target: str) -> str | None:
                scope = obj
                while scope is not None:            # relative to the object, then outwards
                    found = _member_at(scope, target)
                    if found is not None:
                        return _canonical(found)
                    scope = scope.parent
                try:                                # a full dotted path
                    return _canonical(loader.modules_collection[target])
                except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                    pass
                ends = [path for path in everything if path.endswith("." + target)]
                return ends[0] if len(ends) == 1 else None
            return resolve

        for obj in objects:
            if obj.docstring is not None and SPHINX_ROLE.search(obj.docstring.value):
                obj.docstring.value = rewrite_roles(obj.docstring.value, resolver(obj))
