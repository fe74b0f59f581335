"""``handgrad train --help``'s defaults, written from the registry (:mod:`handgrad.registry`) so
that they can never drift from what runs.

Each is one ``(default: RULE, RULE, ...)`` clause, the first rule that applies winning:
``VALUE`` or ``else VALUE`` (always), ``VALUE with OPTIMIZER[/...]``, ``VALUE for MODEL[/...]``,
``VALUE on DATASET[/...]``, or several of these qualifiers together (``0.003 with adam for mlp on
digits``). ``none`` means not set (no clipping, no limit); a hidden layer list is ``512-256``.
"""

from __future__ import annotations

from collections import Counter


def value_text(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return "-".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _clause(rules: list[str], note: str = "") -> str:
    return "(default: " + ", ".join(rules) + (f"; {note}" if note else "") + ")"


def _grouped(pairs, qualifier: str) -> list[str]:
    """``[(name, value), ...]`` as rules ``VALUE QUALIFIER name/name``, one per value, in order."""
    groups: dict = {}
    for name, value in pairs:
        groups.setdefault(value_text(value), []).append(name)
    return [f"{value} {qualifier} {'/'.join(names)}" for value, names in groups.items()]


def _by_model(pairs) -> list[str]:
    """Rules for a value that depends on the model: the most common value is ``else VALUE``."""
    common = Counter(value_text(value) for _, value in pairs).most_common(1)[0][0]
    rules = _grouped([(name, value) for name, value in pairs if value_text(value) != common], "for")
    return rules + [f"else {common}"]


def _tuned(key: str, with_optimizer: bool = False) -> list[str]:
    """Rules for the settings tuned for a model on a dataset (``DatasetEntry.tuned``)."""
    from ..registry import DATASETS, MODELS

    datasets: dict = {}  # "VALUE [with O] for M" -> the datasets it is tuned on, in order
    for data in DATASETS.values():
        for model, settings in data.tuned.items():
            if key in settings:
                optimizer = f" with {MODELS[model].training.optimizer}" if with_optimizer else ""
                datasets.setdefault(f"{value_text(settings[key])}{optimizer} for {model}", []).append(data.name)
    return [f"{rule} on {'/'.join(names)}" for rule, names in datasets.items()]


def epochs() -> str:
    from ..registry import DATASETS

    by_epochs = [(d.name, d.epochs) for d in DATASETS.values() if not d.by_steps]
    by_steps = [d.name for d in DATASETS.values() if d.by_steps]
    note = f"{'/'.join(by_steps)} train{'s' if len(by_steps) == 1 else ''} by steps" if by_steps else ""
    return _clause(_tuned("epochs") + _grouped(by_epochs, "on"), note)


def batch_size() -> str:
    from ..registry import DATASETS

    return _clause(_tuned("batch_size") + _grouped([(d.name, d.batch_size) for d in DATASETS.values()], "on"))


def augment() -> str:
    return _clause(_tuned("augment") + ["else none"])


def lr() -> str:
    from ..registry import LEARNING_RATES

    return _clause(_tuned("lr", with_optimizer=True) + _grouped(LEARNING_RATES.items(), "with"))


def training(attribute: str) -> str:
    """A setting of the models' :class:`~handgrad.registry.Training`: optimizer, weight_decay, grad_clip."""
    from ..registry import MODELS

    return _clause(_by_model([(m.name, getattr(m.training, attribute)) for m in MODELS.values()]))


def threads() -> str:
    """Threads per batch: where tuned for a model on a dataset, else the model's own setting."""
    from ..registry import MODELS

    return _clause(_tuned("threads") + _by_model([(m.name, m.training.threads) for m in MODELS.values()]),
                   "1 without threadpoolctl, on one core, and under mpiexec, whose processes split the batch")


def beta2() -> str:
    from ..registry import LEARNING_RATES, MODELS, _optimizer_betas

    models = [(m.name, m.training.betas[1]) for m in MODELS.values() if m.training.betas]
    optimizers = [(name, _optimizer_betas(name)[1]) for name in LEARNING_RATES if _optimizer_betas(name)]
    return _clause(_grouped(models, "for") + _grouped(optimizers, "with"))


def steps(attribute: str) -> str:
    """A setting of training by steps (:class:`~handgrad.registry.Steps`): ``max_steps`` (none
    for a model trained by epochs), ``warmup``, ``eval_interval``, ``eval_iters``, ``min_lr``."""
    from ..registry import MODELS

    stepped = [m for m in MODELS.values() if m.training.steps is not None]
    if attribute == "min_lr":
        pairs = [(m.name, f"lr/{value_text(m.training.steps.min_lr_divisor)}") for m in stepped]
    else:
        pairs = [(m.name, getattr(m.training.steps, attribute)) for m in stepped]
    if attribute == "max_steps":
        return _clause(_by_model(pairs + [(m.name, None) for m in MODELS.values() if m.training.steps is None]))
    return _clause(_model_rules(pairs))


def model_option(option: str) -> str:
    """A model option (``hidden``, ``embed``, ``n_layer``, ``init``, ...)."""
    from ..registry import MODELS, OPTION_DEFAULTS

    readers = [(m.name, m.defaults.get(option, OPTION_DEFAULTS.get(option))) for m in MODELS.values()
               if option in m.options]
    return _clause(_tuned(option) + _model_rules(readers))


def _model_rules(pairs) -> list[str]:
    """One plain ``VALUE`` when every model agrees, else a rule per value."""
    if len({value_text(value) for _, value in pairs}) == 1:
        return [value_text(pairs[0][1])]
    return _grouped(pairs, "for")
