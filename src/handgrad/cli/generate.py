"""``handgrad generate``: text from a trained language model, or new words from a makemore model.

A GPT trained on text reads no data: the model file holds the vocabulary (``GPT.vocab``), so it
runs where the training text is not. A model trained on a file of words (``--dataset names``,
``--data-file``) records its characters and where its words came from; generate draws new words
and marks each, as makemore does, as in the training set, in the test set, or new (reading the
words again to know; without them it prints the words unmarked and says why)."""

from __future__ import annotations

import argparse
import json
import sys

from .arguments import Command, finite_non_negative, non_negative_int, positive_int
from .models import data_dir_of, load_model, task_of
from .process import CommandError

#: GPT text's sampling defaults (nanoGPT's sample.py) and makemore's for words.
#: The most words one call draws (each step is a forward pass over all of them at once).
MAX_SAMPLES = 10_000
TEXT_DEFAULTS, WORDS_DEFAULTS = {"temperature": 0.8, "top_k": 200}, {"temperature": 1.0, "top_k": None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a model.safetensors written by handgrad train --model gpt, or by a "
                        "makemore model (--dataset names: bigram, mlp-bn, wavenet, transformer)")
    parser.add_argument("--prompt", default="", help="text: the text to continue (default: a newline)")
    parser.add_argument("--tokens", type=non_negative_int, default=500, help="text: characters to generate (default: 500)")
    parser.add_argument("--samples", type=positive_int, default=20,
                        help=f"words: how many to draw, at most {MAX_SAMPLES:,} (default: 20)")
    parser.add_argument("--temperature", type=finite_non_negative,
                        help="divide the logits by this (default: 0.8 for text, 1 for words; 0: always the most likely)")
    parser.add_argument("--top-k", type=positive_int,
                        help="sample among the k most likely (default: 200 for text, all for words)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of the sampling: the same seed, the same text (default: 0)")
    parser.add_argument("--data-dir", help="words: the data root holding names/ (default: the one the model was "
                        "trained from, then $HANDGRAD_DATA and the cache); text models read no data")


def run(args: argparse.Namespace) -> int:
    from ..serialize import read_metadata

    model = load_model(args.model)
    recorded = read_metadata(args.model).get("words")
    if recorded is not None:
        return _words(args, model, recorded)
    if args.data_dir is not None:
        raise CommandError("--data-dir: generate reads no data for a text model (the model file holds its "
                           "vocabulary); drop it")
    if task_of(model) != "language model":
        raise CommandError(f"{args.model}: generate needs a language model (--model gpt, or a makemore model), "
                           f"this is a {type(model).__name__}")
    if model.vocab is None:
        raise CommandError(f"{args.model}: the model has no vocabulary saved with it, so text cannot be encoded")
    try:
        prompt = model.encode(args.prompt)[None] if args.prompt else None
    except ValueError as error:
        raise CommandError(f"--prompt: {error}") from error
    if prompt is None:  # nanoGPT starts from a newline when there is no prompt
        prompt = model.encode("\n" if "\n" in model.vocab.chars else model.vocab.chars[0])[None]
    temperature = TEXT_DEFAULTS["temperature"] if args.temperature is None else args.temperature
    top_k = min(TEXT_DEFAULTS["top_k"] if args.top_k is None else args.top_k, model.vocab_size)  # nanoGPT: k > V is all
    ids = model.generate(prompt, args.tokens, temperature=temperature, top_k=top_k, seed=args.seed)
    print(model.decode(ids[0]))
    return 0


def _words(args: argparse.Namespace, model, recorded: str) -> int:
    """New words, marked as makemore marks them."""
    from ..data.words import Words
    from ..model.makemore import generate_words

    if args.prompt:
        raise CommandError("--prompt: a makemore model draws whole words from their start; drop it")
    if args.samples > MAX_SAMPLES:
        raise CommandError(f"--samples {args.samples:,}: at most {MAX_SAMPLES:,} words per call")
    try:
        source = json.loads(recorded)
        words = Words((), source["chars"], source["dataset"])
        block_size = int(source["block_size"])
    except (ValueError, KeyError, TypeError) as error:
        raise CommandError(f"{args.model}: its record of the words it learned is malformed ({error!r})") from None
    temperature = WORDS_DEFAULTS["temperature"] if args.temperature is None else args.temperature
    samples = generate_words(model, words, args.samples, max_length=block_size - 1, temperature=temperature,
                             top_k=args.top_k, seed=args.seed)
    groups = _groups(args, source, samples)
    if groups is None:
        print("\n".join(samples))
        return 0
    for title, group in (("in the training set", "train"), ("in the test set", "test"), ("new", "new")):
        chosen = [s for s, g in zip(samples, groups) if g == group]
        print(f"{len(chosen)} {title}:" + "".join(f"\n  {s}" for s in chosen))
    return 0


def _groups(args, source: dict, samples: list) -> list | None:
    """Each sample's group (train, test, new), from the words the model learned read again and
    split as its training split them; None, with a note, where they cannot be found."""
    from ..data import DataError
    from ..data.words import load_names, makemore_split, read_words, zero_to_hero_split
    from ..model.makemore import mark_words

    try:
        if source.get("data_file"):
            words = read_words(source["data_file"])
        else:
            words = load_names(data_dir_of(args), download=False)
    except (DataError, OSError) as error:
        print(f"note: the words are not marked (in the training set, in the test set, new): {error}",
              file=sys.stderr)
        return None
    splits = zero_to_hero_split(words) if source.get("split") == "zero-to-hero" else makemore_split(words)
    # Held out: the test split, and Zero to Hero's dev split too (a dev word is not new).
    return mark_words(samples, splits[0].words, [w for part in splits[1:] for w in part.words])


GENERATE = Command("generate", "text from a trained language model (--model gpt), or new words from a makemore "
                   "model", add_arguments, run)
