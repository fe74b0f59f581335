"""`handgrad train --help` says the defaults that `handgrad train` runs: both come from the
registry (the help had drifted from the code: --epochs left out mnist1d's 60, addition's 25 and
dates' 10; --lr left out adagrad's 0.01; --grad-clip left out gpt's 1)."""

import doctest
import importlib.util
import json
import os
import re

import pytest
from conftest import SHARED_DATA

from handgrad import registry
from handgrad.cli import build_parser, main
from handgrad.optim import OPTIMIZERS
from handgrad.registry import DATASETS, MODELS, recipe

PAIRS = [(d.name, m.name) for d in DATASETS.values() for m in MODELS.values() if d.kind in m.kinds]
RULE = re.compile(r"(?:else )?(?P<value>\S+)(?: with (?P<optimizers>\S+))?(?: for (?P<models>\S+))?"
                  r"(?: on (?P<datasets>\S+))?")


@pytest.fixture(scope="module")
def train_help():
    """Each option of `handgrad train --help` (its first flag) -> its help text, as printed
    (on a terminal wide enough that argparse does not break a name at its hyphen)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("COLUMNS", "1000")
    try:
        text = next(a for a in build_parser()._actions if a.dest == "command").choices["train"].format_help()
    finally:
        mp.undo()
    options = {}
    for line in text.split("options:\n")[1].splitlines():
        match = re.match(r"  (-\S+)(.*)", line)
        if match:
            flag = match.group(1).rstrip(",")
            options[flag] = match.group(2)
        else:
            options[flag] += " " + line.strip()
    return options


def claimed(help_text: str, model: str, dataset: str, optimizer: str):
    """The default that ``help_text`` states for this model, dataset and optimizer: the first
    rule of its ``(default: ...)`` clause that applies; ``"absent"`` when the help states none,
    None when no rule applies."""
    clause = re.search(r"\(default: ([^()]*)\)\s*$", help_text)
    if clause is None:
        return "absent"
    for rule in clause.group(1).split("; ")[0].split(", "):
        match = RULE.fullmatch(rule)
        assert match, f"{rule!r} of {help_text!r} is not VALUE [with O] [for M] [on D]"
        for key, name in (("optimizers", optimizer), ("models", model), ("datasets", dataset)):
            if match[key] is not None and name not in match[key].split("/"):
                break
        else:
            return _value(match["value"])
    return None


def _value(text: str):
    if text == "none":
        return None
    if text.startswith("lr/"):
        return ("lr /", float(text[3:]))
    if re.fullmatch(r"\d+(-\d+)+", text):
        return [int(v) for v in text.split("-")]
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _same(said, runs) -> bool:
    if isinstance(said, tuple):  # "lr/10" said of min_lr: a division of the resolved lr
        return False
    if isinstance(runs, list) and len(runs) == 1 and isinstance(said, int):
        return said == runs[0]  # one hidden layer, printed as its width
    return said == runs


@pytest.mark.parametrize("dataset, model", PAIRS)
def test_help_says_the_defaults_that_train_runs(train_help, dataset, model):
    runs = recipe(model, dataset)
    settings = {"--epochs": runs.epochs, "--batch-size": runs.batch_size, "--optimizer": runs.optimizer,
                "--weight-decay": runs.weight_decay, "--grad-clip": runs.grad_clip, "--max-steps": runs.max_steps,
                "--augment": runs.augment}
    if runs.by_steps:
        settings |= {"--warmup": runs.warmup, "--eval-interval": runs.eval_interval, "--eval-iters": runs.eval_iters}
    for flag, value in settings.items():
        said = claimed(train_help[flag], model, dataset, runs.optimizer)
        assert _same(said, value), f"{flag} for {model} on {dataset}: the help says {said!r}, train runs {value!r}"
    if runs.by_steps:
        divisor = claimed(train_help["--min-lr"], model, dataset, runs.optimizer)
        assert divisor[0] == "lr /" and runs.min_lr == runs.lr / divisor[1]
    for option, value in runs.model_options.items():
        if option == "seed":
            continue
        said = claimed(train_help["--" + option.replace("_", "-")], model, dataset, runs.optimizer)
        if said == "absent":  # a switch, off unless given
            assert value is False, f"--{option} for {model}: the help says no default, train runs {value!r}"
        else:
            assert _same(said, value), f"--{option} for {model} on {dataset}: the help says {said!r}, train runs {value!r}"


@pytest.mark.parametrize("dataset, model", PAIRS)
def test_help_says_each_optimizers_learning_rate_and_beta2(train_help, dataset, model):
    offered = [MODELS[model].training.optimizer] if DATASETS[dataset].by_steps else list(OPTIMIZERS)
    for optimizer in offered:
        runs = recipe(model, dataset, optimizer=optimizer)
        said = claimed(train_help["--lr"], model, dataset, optimizer)
        assert said == runs.lr, f"--lr with {optimizer} for {model} on {dataset}: the help says {said}, train runs {runs.lr}"
        said = claimed(train_help["--beta2"], model, dataset, optimizer)
        assert said == (runs.betas[1] if runs.betas else None), (optimizer, model, dataset, said, runs.betas)


def test_every_name_in_the_help_rules_is_a_model_dataset_or_optimizer(train_help):
    from handgrad.cli.train import RECIPE_OPTIONS

    flags = ["--" + option.replace("_", "-") for option in RECIPE_OPTIONS + registry.MODEL_OPTIONS]
    for flag in flags:
        clause = re.search(r"\(default: ([^()]*)\)\s*$", train_help[flag])
        for rule in clause.group(1).split("; ")[0].split(", ") if clause else []:
            match = RULE.fullmatch(rule)
            assert match, f"{flag}: {rule!r} is not VALUE [with O] [for M] [on D]"
            for key, known in (("optimizers", OPTIMIZERS), ("models", MODELS), ("datasets", DATASETS)):
                for name in match[key].split("/") if match[key] else []:
                    assert name in known, f"{flag}: {rule!r} names {name!r}, which is no {key[:-1]}"


def test_the_parsers_defaults_are_the_registrys():
    args = build_parser().parse_args(["train"])
    for option, value in registry.OPTION_DEFAULTS.items():
        assert getattr(args, option) == value, option
    for option in registry.MODEL_OPTIONS:
        if option not in registry.OPTION_DEFAULTS:
            assert getattr(args, option) is None, f"--{option} must default to the model's own value"


def test_every_optimizer_has_a_default_learning_rate():
    assert list(registry.LEARNING_RATES) == list(OPTIMIZERS)


def _history_arguments(out):
    return json.loads((out / "history.json").read_text())["arguments"]


@pytest.mark.parametrize("dataset, model, extra", [
    ("digits", "mlp", []),
    ("mnist1d", "lstm", ["--hidden", "8"]),
])
def test_history_records_the_defaults_the_help_states(train_help, tmp_path, capsys, dataset, model, extra):
    out = tmp_path / "run"
    assert main(["train", "--dataset", dataset, "--model", model, "--max-steps", "1", *extra, "--out", str(out)]) == 0
    arguments = _history_arguments(out)
    for flag, key in (("--epochs", "epochs"), ("--batch-size", "batch_size"), ("--lr", "lr")):
        assert arguments[key] == claimed(train_help[flag], model, dataset, "adam"), key
    augment = claimed(train_help["--augment"], model, dataset, "adam")
    assert arguments["augment"] == (augment or "none")
    # Threads: the help's rule, on no more threads than this machine's cores, and one without
    # threadpoolctl (history.json once recorded null here whatever ran).
    threads = min(claimed(train_help["--threads"], model, dataset, "adam"), os.cpu_count() or 1)
    if threads > 1 and importlib.util.find_spec("threadpoolctl") is None:
        threads = 1
    assert arguments["threads"] == threads
    header = capsys.readouterr().out.splitlines()[0]
    # --max-steps 1 is said too (the header once promised the epochs alone).
    assert header.endswith(f"adam lr {arguments['lr']:g}; {arguments['epochs']} epochs of batch {arguments['batch_size']}"
                           ", stopping after 1 step"
                           + (f"; training batches augmented ({augment})" if augment else ""))


@pytest.mark.skipif(not (SHARED_DATA / "tinyshakespeare" / "input.txt").is_file(),
                    reason=f"tinyshakespeare not found under {SHARED_DATA}")
def test_a_language_models_history_records_the_defaults_the_help_states(train_help, tmp_path, capsys):
    out = tmp_path / "gpt"
    assert main(["train", "--dataset", "shakespeare", "--model", "gpt", "--n-layer", "1", "--n-head", "2",
                 "--n-embd", "16", "--block-size", "8", "--max-steps", "1", "--data-dir", str(SHARED_DATA),
                 "--out", str(out)]) == 0
    arguments = _history_arguments(out)
    for flag in ("--batch-size", "--lr", "--grad-clip", "--warmup", "--eval-interval", "--eval-iters"):
        key = flag[2:].replace("-", "_")
        assert arguments[key] == claimed(train_help[flag], "gpt", "shakespeare", "adamw"), key
    assert arguments["min_lr"] == arguments["lr"] / claimed(train_help["--min-lr"], "gpt", "shakespeare", "adamw")[1]
    assert "adamw lr 0.001 -> 0.0001 (warmup 1), 1 steps of 12 x 8 tokens" in capsys.readouterr().out


# --- the recipe, as a Python user calls it -------------------------------------------------------------


def test_the_registry_docstring_examples_run():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(registry, "handgrad.registry"):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.attempted > 0 and results.failed == 0


def test_a_recipe_takes_overrides_and_builds_what_train_builds():
    r = recipe("mlp", "digits", optimizer="sgd", epochs=3, schedule="cosine", hidden=[16])
    assert (r.lr, r.epochs, r.model_options["hidden"], r.betas) == (0.1, 3, [16], None)
    optimizer, schedule = r.make_optimizer(), r.make_schedule()
    assert type(optimizer).__name__ == "SGD" and optimizer.lr == 0.1
    assert schedule.lr_at(0) == 0.1 and schedule.lr_at(3) == pytest.approx(0.0)
    assert recipe("mlp", "digits", optimizer="adam").lr == 0.003  # tuned with the mlp's own optimizer
    assert recipe("mlp", "digits", optimizer="adamw").lr == 0.001
    assert recipe("mlp", "digits", dropout=0.0).model_options["dropout"] == 0.0


def test_a_language_models_recipe_warms_up_at_most_for_its_whole_run():
    r = recipe("gpt", "shakespeare", max_steps=30)
    assert r.warmup == 100 and r.make_schedule().warmup_steps == 30
    optimizer = r.make_optimizer()
    assert type(optimizer).__name__ == "AdamW" and optimizer.matrices_only and optimizer.betas == (0.9, 0.99)


@pytest.mark.parametrize("model, dataset, overrides, message", [
    ("cnn", "digits", {"dropout": 0.5}, "--dropout applies to --model mlp, not cnn"),
    ("gpt", "digits", {}, "--model gpt cannot learn digits (images); use --model mlp or cnn or deep-cnn or lstm"),
    ("mlp", "digits", {"warmup": 5}, "--warmup applies to training a language model by steps"),
    ("gpt", "shakespeare", {"epochs": 2}, "trains by steps: give --max-steps, not --epochs"),
    ("gpt", "shakespeare", {"optimizer": "sgd"}, "trains with adamw (nanoGPT's); --optimizer sgd is not offered"),
    ("gpt", "shakespeare", {"schedule": "cosine"}, "--schedule cosine is not offered here"),
    ("mlp", "digits", {"optimizer": "sgd", "beta2": 0.9}, "--beta2 applies to --optimizer adam or adamw, not sgd"),
    ("mlp", "cifar", {}, "unknown dataset 'cifar'"),
])
def test_a_recipe_refuses_settings_that_do_not_fit_in_the_clis_words(model, dataset, overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        recipe(model, dataset, **overrides)


def test_a_recipe_refuses_an_unknown_setting_as_a_call_would():
    with pytest.raises(TypeError, match="unexpected keyword argument 'learning_rate'"):
        recipe("mlp", "digits", learning_rate=0.1)


@pytest.mark.parametrize("overrides, message", [
    ({"optimizer": "lion"}, "unknown optimizer 'lion'; choose from sgd, momentum"),
    ({"schedule": "warmup-cosine"}, "unknown schedule 'warmup-cosine' for training by epochs"),
])
def test_a_recipe_refuses_an_unknown_optimizer_or_schedule_instead_of_running_another(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        recipe("mlp", "digits", **overrides)
