"""``handgrad generate``: text from a trained language model. It reads no data: the model file
holds the vocabulary (``GPT.vocab``), so it runs where the training text is not."""

from __future__ import annotations

import argparse

from .arguments import Command, finite_non_negative, non_negative_int, positive_int
from .models import load_model, task_of
from .process import CommandError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a model.safetensors written by handgrad train --model gpt")
    parser.add_argument("--prompt", default="", help="the text to continue (default: a newline)")
    parser.add_argument("--tokens", type=non_negative_int, default=500, help="characters to generate (default: 500)")
    parser.add_argument("--temperature", type=finite_non_negative, default=0.8,
                        help="divide the logits by this (default: 0.8; 0: always the most likely)")
    parser.add_argument("--top-k", type=positive_int, default=200, help="sample among the k most likely (default: 200)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of the sampling: the same seed, the same text (default: 0)")
    # Not an option of generate, which reads no data (the model file holds its vocabulary); declared
    # only to say so in one line to someone who passes it as evaluate needs it.
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    if args.data_dir is not None:
        raise CommandError("--data-dir: generate reads no data (the model file holds its vocabulary); drop it")
    model = load_model(args.model)
    if task_of(model) != "language model":
        raise CommandError(f"{args.model}: generate needs a language model (--model gpt), this is a {type(model).__name__}")
    if model.vocab is None:
        raise CommandError(f"{args.model}: the model has no vocabulary saved with it, so text cannot be encoded")
    try:
        prompt = model.encode(args.prompt)[None] if args.prompt else None
    except ValueError as error:
        raise CommandError(f"--prompt: {error}") from error
    if prompt is None:  # nanoGPT starts from a newline when there is no prompt
        prompt = model.encode("\n" if "\n" in model.vocab.chars else model.vocab.chars[0])[None]
    if not args.temperature >= 0:
        raise CommandError(f"--temperature must be >= 0, got {args.temperature}")
    top_k = min(args.top_k, model.vocab_size)  # as nanoGPT: k above the vocabulary means all of it
    ids = model.generate(prompt, args.tokens, temperature=args.temperature, top_k=top_k, seed=args.seed)
    print(model.decode(ids[0]))
    return 0


GENERATE = Command("generate", "text from a trained language model (--model gpt)", add_arguments, run)
