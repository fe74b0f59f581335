"""``handgrad train``: a model of the registry trained on a dataset of the registry, with the
recipe that :func:`handgrad.registry.recipe` resolves (the help's defaults come from the same
place, :mod:`handgrad.cli.defaults`). Classifiers and seq2seq models train by epochs; a language
model trains by steps, as nanoGPT's train.py."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path

import numpy as np

from . import defaults
from .arguments import (
    Command,
    finite_non_negative,
    finite_positive,
    fraction,
    non_negative_int,
    positive_int,
)
from .models import plot_module
from .process import CommandError, claim_output_folder, mpi_world

#: The settings of ``handgrad train`` that :func:`handgrad.registry.recipe` resolves, besides the model options.
RECIPE_OPTIONS = ("epochs", "batch_size", "optimizer", "lr", "beta2", "weight_decay", "grad_clip", "schedule",
                  "augment", "max_steps", "seed", "eval_interval", "eval_iters", "warmup", "min_lr", "threads")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option of ``handgrad train``, in the order its help lists them; the defaults that
    depend on the model or the dataset are the registry's, written by :mod:`.defaults`."""
    _add_model_arguments(parser)
    _add_optimizer_arguments(parser)
    _add_language_model_arguments(parser)
    _add_run_arguments(parser)


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """What to train: the dataset, the model and its options (and gradient clipping)."""
    from .. import registry
    from ..model import ACTIVATIONS

    add, shared = parser.add_argument, registry.OPTION_DEFAULTS
    add("--dataset", choices=list(registry.DATASETS),
        help=f"the data to learn (default: {registry.DEFAULT_DATASET}; names with --data-file)")
    by_dataset = [f"{d.model} on {d.name}" for d in registry.DATASETS.values() if d.model]
    add("--model", choices=list(registry.MODELS),
        help="; ".join(f"{entry.name}: {entry.help}" for entry in registry.MODELS.values())
        + f" (default: {', '.join(by_dataset)}, else {registry.DEFAULT_MODEL})")
    add("--batchnorm", action="store_true", default=shared["batchnorm"], help="BatchNorm after every hidden Affine (mlp)")
    add("--dropout", type=fraction, default=shared["dropout"], metavar="P",
        help="mlp: dropout after every hidden layer; gpt: in every block " + defaults.model_option("dropout"))
    add("--hidden", type=positive_int, nargs="*", metavar="N",
        help="hidden layer widths (mlp), the state size (lstm, seq2seq, seq2seq-attention, rnn, gru), or the hidden "
        "width (mlp-bn, wavenet) "
        + defaults.model_option("hidden"))
    add("--embed", type=positive_int, metavar="D", help="character embedding size (seq2seq models) "
        + defaults.model_option("embed"))
    add("--peeky", action="store_true", default=shared["peeky"],
        help="feed the encoder's state to every decoder step (seq2seq)")
    add("--reverse-input", action="store_true", default=shared["reverse_input"],
        help="read each question backwards (seq2seq)")
    add("--grad-clip", type=finite_positive, metavar="MAX_NORM",
        help="scale the gradients down to this total norm when above it (as torch's clip_grad_norm_) "
        + defaults.training("grad_clip"))
    add("--activation", choices=sorted(ACTIVATIONS), default=shared["activation"],
        help="the hidden layers' activation (mlp) " + defaults.model_option("activation"))
    add("--init", default=shared["init"], help="he, he_uniform, xavier, xavier_uniform " + defaults.model_option("init"))


def _add_optimizer_arguments(parser: argparse.ArgumentParser) -> None:
    """How to train: the optimizer, its settings, the schedule and the length of the run."""
    from .. import registry
    from ..optim import OPTIMIZERS

    add = parser.add_argument
    add("--optimizer", choices=list(OPTIMIZERS), help="the optimizer " + defaults.training("optimizer"))
    add("--lr", type=finite_non_negative, help="learning rate " + defaults.lr())
    add("--beta2", type=fraction, help="Adam's second-moment decay " + defaults.beta2())
    matrices_only = "/".join(m.name for m in registry.MODELS.values() if m.training.decay_matrices_only)
    add("--weight-decay", type=finite_non_negative,
        help="the optimizer's weight decay (torch.optim's): on every parameter, "
        + (f"but on weight matrices only for {matrices_only}, as nanoGPT " if matrices_only else "")
        + defaults.training("weight_decay"))
    add("--weight-decay-l2", type=finite_non_negative, default=registry.OPTION_DEFAULTS["weight_decay_l2"],
        metavar="LAMBDA", help="the model's L2 penalty LAMBDA/2 |W|^2 on the weights only (the book's) "
        + defaults.model_option("weight_decay_l2"))
    add("--schedule", choices=["constant", "cosine"], default="constant",
        help="learning rate: constant, or cosine annealing to 0 over the epochs")
    add("--augment", choices=["none", *registry.AUGMENTATIONS],
        help="warp: shear, rotate, scale and shift each training image at random, every batch anew (the 8x8 "
        "digits: so that the model reads drawings, which are less tidy than UCI's) " + defaults.augment())
    add("--epochs", type=positive_int, help="epochs to train " + defaults.epochs())
    add("--max-steps", type=non_negative_int, metavar="N",
        help="stop after N optimizer steps; language models train by steps " + defaults.steps("max_steps"))
    add("--threads", type=positive_int, metavar="N",
        help="split each batch over N threads of this process, one BLAS thread each, the same model up to the "
        "order of sums (handgrad.threads; needs threadpoolctl); HANDGRAD_THREADS sets it too "
        + defaults.threads())


def _add_language_model_arguments(parser: argparse.ArgumentParser) -> None:
    """A GPT's sizes and nanoGPT's recipe by steps (and the batch size, which every run has)."""
    from .. import registry

    add = parser.add_argument
    add("--n-layer", type=positive_int, help="gpt, transformer: blocks " + defaults.model_option("n_layer"))
    add("--n-head", type=positive_int, help="gpt, transformer: attention heads " + defaults.model_option("n_head"))
    add("--n-embd", type=positive_int, help="gpt, transformer: width; mlp-bn, wavenet, rnn, gru: the size of a "
        "character's embedding " + defaults.model_option("n_embd"))
    add("--block-size", type=positive_int, help="gpt: context length in tokens; mlp-bn, wavenet: characters of "
        "context (wavenet: a power of 2) " + defaults.model_option("block_size"))
    add("--no-bias", action="store_true", default=registry.OPTION_DEFAULTS["no_bias"],
        help="gpt: no biases in LayerNorm and Affine (nanoGPT's bias=False)")
    add("--eval-interval", type=positive_int,
        help="language models: evaluate every N steps " + defaults.steps("eval_interval"))
    add("--eval-iters", type=positive_int, help="language models: batches per evaluation " + defaults.steps("eval_iters"))
    add("--warmup", type=non_negative_int, help="language models: warmup steps " + defaults.steps("warmup"))
    add("--min-lr", type=finite_non_negative, help="language models: the last lr, where the cosine decays to (gpt) "
        "or the rate after the step down at 3/4 of the run (mlp-bn, wavenet) "
        + defaults.steps("min_lr"))
    add("--batch-size", type=positive_int, help="samples per batch " + defaults.batch_size())


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the run itself: seed, validation, data, output, checkpoints."""
    add = parser.add_argument
    add("--seed", type=non_negative_int, default=0,
        help="the seed of the weights, the batches and dropout: the same seed, the same run (default: 0)")
    add("--val-split", type=fraction, default=0.0,
        help="hold out this fraction of the training set for validation (default: report the test set)")
    add("--early-stopping", type=positive_int, metavar="PATIENCE",
        help="stop after PATIENCE epochs without a better validation loss (needs --val-split)")
    add("--data-dir", help="data root with one folder per dataset (default: $HANDGRAD_DATA, then the cache)")
    add("--data-file", metavar="FILE", help="names (makemore): learn this file instead, one word or name a line "
        "(makemore's promise: any such file); implies --dataset names")
    add("--out", default="handgrad-run", help="output folder (default: handgrad-run); a model there from an earlier "
        "run is replaced, and two runs at once on one folder are refused")
    add("--checkpoint-every", type=non_negative_int, default=0, metavar="K",
        help="write a checkpoint every K epochs (a gpt: at every evaluation when K > 0); 0: only when Ctrl-C "
        "stops the run, after the step it is in (a second Ctrl-C stops at once)")
    add("--log-interval", type=non_negative_int, metavar="N",
        help="language models: print the training loss every N steps, with tokens/s (nanoGPT's log_interval; "
        "default: 10 for gpt, eval-interval / 10 for makemore's models; 0: off)")
    add("--resume", action="store_true",
        help="continue from the checkpoint in --out, with the same settings (others are refused)")
    add("--plot", action="store_true", help="also write training curves to --out/curves.png (matplotlib)")


def recipe_of(args: argparse.Namespace):
    """The registry's :class:`~handgrad.registry.Recipe` for these arguments; a setting that
    does not fit is a one-line error."""
    from ..registry import DATASETS, DEFAULT_DATASET, MODEL_OPTIONS, default_model, recipe

    words = [name for name, d in DATASETS.items() if d.kind == "words"]
    if args.dataset is None:  # --data-file alone: a file of words, learned as the names are
        args.dataset = words[0] if args.data_file is not None else DEFAULT_DATASET
    elif args.data_file is not None and args.dataset not in words:
        raise CommandError(f"--data-file is a file of words, one a line, for --dataset {'/'.join(words)}; "
                           f"not for --dataset {args.dataset}")
    if args.model is None:
        args.model = default_model(args.dataset)

    overrides = {name: getattr(args, name) for name in RECIPE_OPTIONS + MODEL_OPTIONS}
    if DATASETS[args.dataset].by_steps:
        del overrides["schedule"]  # training by steps always warms up, then decays by the cosine
    try:
        return recipe(args.model, args.dataset, **overrides)
    except ValueError as error:
        raise CommandError(str(error)) from None


def run(args: argparse.Namespace) -> int:
    recipe = recipe_of(args)
    plot = plot_module() if args.plot else None  # a missing matplotlib is said now, not after training
    if args.threads is not None and args.threads > 1 and mpi_world() is not None:
        raise CommandError(f"--threads {args.threads}: under mpiexec the processes split each batch already; "
                           "drop --threads (or run one process with it)")
    threads = _threads(args, recipe)
    if threads > 1:  # and a missing threadpoolctl: said before anything is trained
        from ..threads import ENVIRONMENT_VARIABLE, blas_libraries

        try:
            blas_libraries()
        except ImportError:
            asked = f"--threads {threads}" if args.threads is not None else f"{ENVIRONMENT_VARIABLE}={threads}"
            raise CommandError(f"{asked}: a batch split over threads needs threadpoolctl, to give each thread one "
                               "BLAS thread: pip install 'handgrad[threads]' (or --threads 1)") from None
    out = Path(args.out)
    checkpoint = out / "checkpoint.safetensors"
    # Under `mpiexec -n K`: every rank trains its share of each batch; rank 0 alone prints and
    # writes into --out (the others' output goes nowhere, and they need not see --out).
    comm = mpi_world()
    rank = comm.rank if comm is not None else 0
    if args.resume and not rank and not checkpoint.is_file():
        raise CommandError(f"--resume: no checkpoint at {checkpoint} (a run writes one when Ctrl-C stops it, and "
                           "every K epochs with --checkpoint-every K)")
    with contextlib.ExitStack() as stack:
        if rank:
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
        else:
            files = ["model.safetensors", "history.json", "checkpoint.safetensors"] + (["curves.png"] if plot else [])
            stack.enter_context(claim_output_folder(out, files))
        if comm is not None:
            print(f"data-parallel training on {comm.size} MPI processes: each batch is split into {comm.size} shards")
        from ..registry import DATASETS

        kind = DATASETS[args.dataset].kind
        train = _train_word_model if kind == "words" else _train_language_model if recipe.by_steps else _train_classifier
        return train(out, args, recipe, plot)


def _train_classifier(out: Path, args: argparse.Namespace, recipe, plot) -> int:
    """Epochs of minibatches (:func:`handgrad.fit`); ends with the line ``test accuracy: X``."""
    import handgrad as hg

    from ..registry import build_model, load_task

    task = load_task(args.dataset, args.data_dir)
    (x_train, t_train), val, val_name = _validation_split(task.train, task.test, args)
    model, description = build_model(recipe.model, task, recipe.model_options)
    print(f"dataset {args.dataset}: {len(x_train)} train, {len(val[0])} {val_name} samples; model {description}; "
          f"{recipe.optimizer} lr {recipe.lr:g}; {recipe.epochs} epoch{'' if recipe.epochs == 1 else 's'} of batch "
          f"{recipe.batch_size}" + (f", stopping after {recipe.max_steps} step{'' if recipe.max_steps == 1 else 's'}"
                                    if recipe.max_steps else "")
          + (f"; training batches augmented ({recipe.augment})" if recipe.augment else ""))

    # Measured on the batches as trained: warped ones, when augmented (so it may sit below test accuracy).
    train_acc = "warped train acc" if recipe.augment else "train acc"

    def log(record):
        print(f"epoch {record['epoch']:3d}  loss {record['train_loss']:.4f}  {train_acc} {record['train_accuracy']:.4f}  "
              f"{val_name} loss {record['val_loss']:.4f}  {val_name} acc {record['val_accuracy']:.4f}  "
              f"({record['seconds']:.2f} s)", flush=True)

    history = hg.fit(model, recipe.make_optimizer(), (x_train, t_train), val=val, epochs=recipe.epochs,
                     batch_size=recipe.batch_size, seed=recipe.seed, early_stopping=args.early_stopping,
                     schedule=recipe.make_schedule(), grad_clip=recipe.grad_clip,
                     checkpoint=_checkpoint(out, args), checkpoint_every=args.checkpoint_every, resume=args.resume,
                     max_steps=recipe.max_steps, augment=recipe.make_augment(), log=log,
                     distributed=mpi_world() is not None, threads=_threads(args, recipe))
    if _other_rank():  # rank 0 alone evaluates and writes
        return 0
    x_test, t_test = task.test
    test_accuracy = hg.train.evaluate(model, x_test, t_test)[1]
    _save(out, args, model, {"test_accuracy": test_accuracy}, history,
          {"epochs": recipe.epochs, "batch_size": recipe.batch_size, "lr": recipe.lr, "augment": recipe.augment or "none"},
          recipe)
    if history.best_epoch is not None:
        print(f"early stopping: restored the weights of epoch {history.best_epoch}")
    print(f"wrote {out / 'model.safetensors'} and {out / 'history.json'}")
    if plot is not None:
        print(f"wrote {plot.training_curves(history, out / 'curves.png', val_label=val_name)}")
    print(f"test accuracy: {test_accuracy:.4f}")
    return 0


def _validation_split(train, test, args: argparse.Namespace):
    """``(train, val, val_name)``: the test set as validation, or with --val-split the end of a
    fixed permutation of the training set held out."""
    (x_train, t_train) = train
    if not args.val_split:
        if args.early_stopping:
            raise CommandError("--early-stopping needs --val-split (stopping on the test set would leak it)")
        return train, test, "test"
    order = np.random.default_rng(args.seed).permutation(len(x_train))
    n_val = round(args.val_split * len(x_train))
    if not 1 <= n_val < len(x_train):
        raise CommandError(f"--val-split {args.val_split:g} holds out {n_val} of {len(x_train)} training samples; "
                           f"it must leave at least one sample on each side (at least {1 / len(x_train):.2g})")
    val = (x_train[order[:n_val]], t_train[order[:n_val]])
    return (x_train[order[n_val:]], t_train[order[n_val:]]), val, "val"


def _train_language_model(out: Path, args: argparse.Namespace, recipe, plot) -> int:
    """nanoGPT's train.py: AdamW (decay on matrices only), warmup then cosine decay, clipping,
    evaluation every --eval-interval steps; ends with the line ``val loss: X``."""
    import handgrad as hg

    from ..registry import build_model, load_task

    task = load_task(args.dataset, args.data_dir)
    shortest = min(len(task.train[0]), len(task.test[0]))
    if (args.block_size or 0) > shortest:  # say so before building a model that size
        raise CommandError(f"--block-size {args.block_size} is longer than the validation text ({shortest:,} tokens)")
    model, description = build_model(recipe.model, task, recipe.model_options)
    optimizer, schedule = recipe.make_optimizer(), recipe.make_schedule()
    print(f"dataset {args.dataset}: {len(task.train[0]):,} train, {len(task.test[0]):,} val tokens; model {description}; "
          f"{recipe.optimizer} lr {recipe.lr:g} -> {recipe.min_lr:g} (warmup {schedule.warmup_steps}), "
          f"{recipe.max_steps} steps of {recipe.batch_size} x {model.block_size} tokens")

    def log(record):
        speed = f", {record['tokens_per_second']:,.0f} tokens/s" if record["tokens_per_second"] else ""
        print(f"step {record['step']:5d}: train loss {record['train_loss']:.4f}, val loss {record['val_loss']:.4f}  "
              f"(lr {record['lr']:.2e}{speed})", flush=True)

    def log_step(record):
        speed = f", {record['tokens_per_second']:,.0f} tokens/s" if record["tokens_per_second"] else ""
        # nanoGPT's "iter" line between evaluations (which print "step N: train loss, val loss").
        print(f"iter {record['step']:5d}: loss {record['train_loss']:.4f}  (lr {record['lr']:.2e}{speed})", flush=True)

    history = hg.train.fit_lm(model, optimizer, task.train, task.test, block_size=model.block_size,
                              batch_size=recipe.batch_size, max_steps=recipe.max_steps,
                              eval_interval=recipe.eval_interval, eval_iters=recipe.eval_iters, schedule=schedule,
                              grad_clip=recipe.grad_clip, seed=recipe.seed, checkpoint=_checkpoint(out, args),
                              checkpoint_every=1 if args.checkpoint_every else 0, resume=args.resume, log=log,
                              log_interval=LOG_INTERVAL if args.log_interval is None else args.log_interval,
                              log_step=log_step, distributed=mpi_world() is not None, threads=_threads(args, recipe))
    if _other_rank():  # rank 0 alone writes
        return 0
    _save(out, args, model, {"val_loss": history["val_loss"][-1]}, history,
          {"eval_interval": recipe.eval_interval, "eval_iters": recipe.eval_iters, "warmup": recipe.warmup,
           "min_lr": recipe.min_lr, "batch_size": recipe.batch_size, "lr": recipe.lr, "max_steps": recipe.max_steps,
           "grad_clip": recipe.grad_clip}, recipe)
    print(f"wrote {out / 'model.safetensors'} and {out / 'history.json'}")
    if plot is not None:
        print(f"wrote {plot.lm_curves(history, out / 'curves.png')}")
    print(f"val loss: {history['val_loss'][-1]:.4f}")
    return 0


def _train_word_model(out: Path, args: argparse.Namespace, recipe, plot) -> int:
    """makemore: a file of words, split as the model's series splits it (Zero to Hero's 80/10/10
    for the models of fixed contexts, makemore.py's test set of min(1000, 10 %) for the models of
    whole words), trained by steps on random batches; prints 10 samples marked as makemore marks
    them, then ``dev loss: X`` over the whole dev split (Zero to Hero's split) and ends with
    ``test loss: X`` over the whole test split."""
    import handgrad as hg

    from ..data.words import makemore_split, zero_to_hero_split
    from ..model.makemore import MAKEMORE_MODELS, generate_words, mark_words, word_examples
    from ..registry import build_model, load_task

    task = load_task(args.dataset, args.data_dir, args.data_file)
    words = task.vocab
    model, description = build_model(recipe.model, task, recipe.model_options)
    examples = MAKEMORE_MODELS[recipe.model][1]
    if examples == "contexts":
        split_name, (train_words, val_words, test_words) = "zero-to-hero", zero_to_hero_split(words)
        val_name = "dev"
    else:
        split_name, (train_words, test_words) = "makemore", makemore_split(words)
        val_words, val_name = test_words, "test"
    train, val, test = (word_examples(model, part, words.block_size) for part in (train_words, val_words, test_words))
    optimizer, schedule = recipe.make_optimizer(), recipe.make_schedule()
    lr = f"{recipe.lr:g}" + (f" -> {recipe.min_lr:g} at step {schedule.step_size}" if recipe.schedule == "step" else "")
    dev = f"{len(val_words.words):,} dev / " if val_words is not test_words else ""
    print(f"dataset {task.name}: {len(words.words):,} words of {len(words.chars)} characters, "
          f"{len(train_words.words):,} train / {dev}{len(test_words.words):,} test ({split_name} split); model "
          f"{description}; {recipe.optimizer} lr {lr}, {recipe.max_steps} steps of {recipe.batch_size}; every "
          f"{recipe.eval_interval} steps the {val_name} loss estimated on {recipe.eval_iters} batches")

    def log(record):
        print(f"step {record['step']:6d}: train loss {record['train_loss']:.4f}, {val_name} loss "
              f"{record['val_loss']:.4f}  (lr {record['lr']:.2e})", flush=True)

    def log_step(record):
        print(f"iter {record['step']:6d}: loss {record['train_loss']:.4f}  (lr {record['lr']:.2e})", flush=True)

    log_interval = recipe.eval_interval // 10 if args.log_interval is None else args.log_interval
    history = hg.train.fit_lm(model, optimizer, train, val, block_size=None, batch_size=recipe.batch_size,
                              max_steps=recipe.max_steps, eval_interval=recipe.eval_interval,
                              eval_iters=recipe.eval_iters, schedule=schedule, grad_clip=recipe.grad_clip,
                              seed=recipe.seed, checkpoint=_checkpoint(out, args),
                              checkpoint_every=1 if args.checkpoint_every else 0, resume=args.resume, log=log,
                              log_interval=log_interval, log_step=log_step, threads=_threads(args, recipe))
    test_loss = hg.train.evaluate(model, *test, batch_size=1000)[0]
    dev_loss = hg.train.evaluate(model, *val, batch_size=1000)[0] if val_words is not test_words else None
    source = {"dataset": args.dataset, "data_file": str(Path(args.data_file).resolve()) if args.data_file else None,
              "split": split_name, "chars": words.chars, "block_size": words.block_size}
    losses = {"test_loss": test_loss, "val_loss": history["val_loss"][-1]} | ({"dev_loss": dev_loss} if dev_loss else {})
    _save(out, args, model, losses, history,
          {"eval_interval": recipe.eval_interval, "eval_iters": recipe.eval_iters, "min_lr": recipe.min_lr,
           "batch_size": recipe.batch_size, "lr": recipe.lr, "max_steps": recipe.max_steps}, recipe,
          extra_metadata={"words": json.dumps(source)})
    print(f"wrote {out / 'model.safetensors'} and {out / 'history.json'}")
    if plot is not None:
        print(f"wrote {plot.lm_curves(history, out / 'curves.png')}")
    samples = generate_words(model, words, 10, seed=recipe.seed)
    held_out = test_words.words + (val_words.words if val_words is not test_words else ())  # dev too: not trained on
    for sample, group in zip(samples, mark_words(samples, train_words.words, held_out)):
        print(f"  {sample}  ({'in the training set' if group == 'train' else 'in the test set' if group == 'test' else 'new'})")
    if dev_loss is not None:  # Zero to Hero's split: its notebooks report split_loss('val') over the whole dev set
        print(f"dev loss: {dev_loss:.4f}")
    print(f"test loss: {test_loss:.4f}")
    return 0


def _threads(args: argparse.Namespace, recipe) -> int:
    """The recipe's threads per batch; under ``mpiexec`` the ranks split the batch instead, so a
    default of more than one thread (the model's, the dataset's or HANDGRAD_THREADS) gives way
    (an explicit --threads above 1 is refused there)."""
    if mpi_world() is not None and args.threads is None:
        return 1
    return recipe.threads


#: Steps between two lines of training loss when training by steps (nanoGPT's log_interval).
LOG_INTERVAL = 10


def _checkpoint(out: Path, args: argparse.Namespace) -> Path:
    """Where the run's checkpoint goes: every K epochs with --checkpoint-every K, and always when
    Ctrl-C stops the run (the trainer writes it then, and the message says how to --resume)."""
    return out / "checkpoint.safetensors"


def _other_rank() -> bool:
    """True on an MPI rank other than 0."""
    comm = mpi_world()
    return comm is not None and bool(comm.rank)


def _save(out: Path, args: argparse.Namespace, model, result: dict, history, resolved: dict, recipe,
          extra_metadata: dict | None = None) -> None:
    """Write model.safetensors and history.json, whose ``arguments`` are the command's with the
    defaults that ran resolved (``resolved``, and the threads every run has), so that
    history.json says what really ran."""
    import handgrad as hg

    from ..serialize import atomic_write_bytes

    optimizer = recipe.optimizer

    if (out / "model.safetensors").is_file() and not args.resume:
        print(f"replacing the model of an earlier run in {out}")
    # What later commands reuse: the data root it learned from (evaluate, generate, the web page's
    # test images), and the optimizer and lr that trained it (trace's update ratios).
    metadata = {"dataset": args.dataset, "optimizer": optimizer, "lr": repr(resolved["lr"])}
    data_root = args.data_dir or os.environ.get("HANDGRAD_DATA")
    if data_root:
        metadata["data_dir"] = str(Path(data_root).resolve())
    metadata |= extra_metadata or {}
    hg.save(model, out / "model.safetensors", metadata={k: v for k, v in metadata.items() if v})
    arguments = {k: v for k, v in vars(args).items() if k not in ("handler", "argv")} | resolved \
        | {"threads": _threads(args, recipe)}
    summary = {"dataset": args.dataset, **result, **history.to_dict(), "arguments": arguments}
    atomic_write_bytes(out / "history.json", [json.dumps(summary, indent=2, default=str).encode()])


TRAIN = Command("train", "train a model and save it (default: an MLP on the embedded digits, in seconds)",
                add_arguments, run,
                description="Train a model (--model) on a dataset (--dataset): classifiers and seq2seq models by "
                "epochs, printing loss and accuracy; a GPT on text by steps, printing train and validation loss. "
                "Writes model.safetensors and history.json into --out.")
