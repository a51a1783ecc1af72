"""The flat options of ``robustify()`` and ``robust-prune robustify``, mapped onto :class:`RobustifyConfig`.

One table (:data:`OPTIONS`) names every option, the config fields it sets and its help. ``robustify()``'s
keywords and the CLI's flags are this table; :func:`build_config` turns given options into a config whose
every unset field keeps the config dataclasses' own default, so ``robustify(model)``, ``RobustifyConfig()`` and
``robust-prune robustify`` run the same experiment.

Example:
    >>> from robust_prune import RobustifyConfig
    >>> build_config(method="dense") == RobustifyConfig(method="dense")
    True
    >>> cfg = build_config(objective="trades", epochs=2)
    >>> cfg.pretrain.epochs, cfg.pretrain.lr, cfg.finetune.lr      # TRADES' default lr, halved for fine-tuning
    (2, 0.02, 0.01)
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from .config import (
    STAGES,
    TRAIN_ATTACK,
    AttackConfig,
    PruneConfig,
    RobustifyConfig,
    TrainConfig,
    method_prune_defaults,
)
from .errors import ConfigError

__all__ = ["OPTIONS", "Option", "build_config", "config_paths", "option_default", "DATA_OPTIONS", "DataOption"]

def _every_stage(field: str) -> tuple[str, ...]:
    return tuple(f"{stage}.{field}" for stage in STAGES)


@dataclass(frozen=True)
class Option:
    """One flat option: ``robustify(name=...)`` and ``robust-prune robustify --name ...``.

    Attributes:
        name: the keyword (the CLI flag is ``--`` + ``name`` with dashes).
        paths: the config fields it sets (``"pretrain.lr"``, ``"prune.sparsity"``).
        help: what it does, for the CLI and the docs.
        aliases: extra CLI spellings kept for existing command lines.
    """

    name: str
    paths: tuple[str, ...]
    help: str
    aliases: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option("method", ("method",), "what to run (see the methods listed above)"),
    Option("seed", ("seed",), "makes the whole run deterministic on one machine"),
    Option("deterministic", ("deterministic",), "deterministic CUDA kernels (cuDNN, cuBLAS, "
           "torch.use_deterministic_algorithms): bit-exact GPU runs, slower; CPU runs are exact without it"),
    # what to remove
    Option("sparsity", ("prune.sparsity",), "fraction of channels (channel) or weights (weight) removed, in [0, 1)"),
    Option("structure", ("prune.structure",), "channel (torch-pruning: the model gets smaller) or weight (masks)"),
    Option("importance", ("prune.importance",), "magnitude, taylor (channels), robust (weights) or random"),
    Option("scope", ("prune.scope",), "global ranking or layerwise (the same fraction per layer)"),
    Option("prune_first_layer", ("prune.prune_first_layer",), "let the stem lose weights (weight structure)"),
    Option("prune_classifier", ("prune.prune_classifier",), "let the classifier lose weights (weight structure)"),
    Option("round_to", ("prune.round_to",), "round kept channel counts to a multiple of this (1: exact fractions)"),
    Option("attention", ("prune.attention",), "channel pruning of attention: remove whole heads, or head_dim "
           "(the same dimensions from every head)"),
    Option("rounds", ("prune.rounds",), "lottery: pruning rounds to reach the sparsity"),
    Option("rewind_epoch", ("prune.rewind_epoch",), "lottery: epoch to rewind to (0 = the initialisation)"),
    Option("reinit", ("prune.reinit",), "lottery: re-initialise the final ticket (the control)"),
    Option("adversarial", ("prune.adversarial",), "lottery: adversarial (or, with --no-adversarial, clean) training "
           "while pruning", aliases=()),
    # how long and how fast to train
    Option("epochs", ("pretrain.epochs",), "training epochs before pruning (dense: all of them; lottery: per round)"),
    Option("finetune_epochs", ("finetune.epochs",), "fine-tuning epochs of the pruned model (the ticket)"),
    Option("grow_epochs", ("grow_train.epochs",), "iwi: training epochs of the grown full-width model"),
    Option("lr", ("pretrain.lr",), "initial learning rate (default: the objective's)"),
    Option("finetune_lr", ("finetune.lr",), "fine-tuning learning rate (default: half of --lr)"),
    Option("grow_lr", ("grow_train.lr",), "iwi: learning rate of the grown model (default: --lr)"),
    Option("objective", _every_stage("objective"), "pgd-at, trades, fgsm-rs or clean"),
    Option("momentum", _every_stage("momentum"), "SGD momentum"),
    Option("weight_decay", _every_stage("weight_decay"), "SGD weight decay"),
    Option("schedule", _every_stage("schedule"), "learning-rate schedule of each stage: cosine or constant"),
    Option("trades_beta", _every_stage("trades_beta"), "TRADES' robustness trade-off"),
    Option("mixed_precision", _every_stage("mixed_precision"), "no, bf16 (autocast) or fp16 (autocast with a gradient "
           "scaler; CUDA only) training"),
    Option("channels_last", _every_stage("channels_last"), "train in the channels_last memory format"),
    Option("checkpoint_every", _every_stage("checkpoint_every"), "checkpoint every this many epochs (with a run dir)"),
    Option("sync_bn", _every_stage("sync_bn"), "synchronise BatchNorm over the processes of a multi-process run "
           "(default: when each process sees fewer than 64 images per step)"),
    # the training adversary
    Option("attack", _every_stage("attack"), "the training adversary as one AttackConfig (Python only)"),
    Option("eps", _every_stage("attack.eps"), "training L-inf budget in pixel units, also the report's unless "
           "--eval-eps (default: the dataset's)"),
    Option("train_steps", _every_stage("attack.steps"), "attack steps during training"),
    Option("step_size", _every_stage("attack.step_size"), "training attack step (default: 2.5 eps / steps)"),
    Option("train_restarts", _every_stage("attack.restarts"), "training attack restarts"),
    Option("random_start", _every_stage("attack.random_start"), "start the training attack at a random point"),
    Option("train_norm", _every_stage("attack.norm"), "training threat model: Linf or L2"),
    Option("train_attack", _every_stage("attack.name"), "training attack for pgd-at: pgd or fgsm"),
    Option("attack_seed", _every_stage("attack.seed"), "offsets the seeds of the per-batch training attacks"),
    # inverse weights inheritance
    Option("ticket_method", ("ticket_method",), "iwi: where the ticket comes from, prune or lottery"),
    Option("grow_init", ("grow_init",), "iwi: new weights when growing: zero-out, zero, net2net (exact), "
           "small-out or random"),
    Option("grow_scale", ("grow_scale",), "iwi: std of new channels' incoming weights (default: timm's init)"),
    Option("grow_out_scale", ("grow_out_scale",), "iwi: small-out's std of the weights reading new channels, "
           "relative to the inherited weights' std"),
    # the report
    Option("eval_attacks", ("eval_attacks",), "the report's attacks", aliases=("--attacks",)),
    Option("eval_eps", ("eval_eps",), "the report's L-inf budget (default: the training eps, else the dataset's)"),
    Option("eval_steps", ("eval_steps",), "PGD steps of the report"),
    Option("eval_n", ("eval_n",), "evaluate on the first N test points (default: all); under torchrun spell it "
           "--eval-n", aliases=("--n",)),
)
_BY_NAME = {option.name: option for option in OPTIONS}


# --- issue 16: how the data is read (not part of the experiment's config: the data spec records what matters) ---
@dataclass(frozen=True)
class DataOption:
    """One option of how data is read: a keyword of ``robustify()``, ``prepare()`` and ``evaluate()`` (those marked
    ``evaluate``) and a flag of ``robust-prune robustify`` / ``evaluate``. The keyword's default is ``default``.

    Data options are not :class:`RobustifyConfig` fields: the resolution and augmentation a run trained with are
    recorded in its data spec (``result.data``, the saved ``config.json``), workers and pinned memory change
    nothing measured.
    """

    name: str
    type: type
    default: Any
    help: str
    evaluate: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


DATA_OPTIONS: tuple[DataOption, ...] = (
    DataOption("image_size", int, None, "side of the square images (default: the dataset's native resolution, digits "
               "32; an image folder at the model's pretrained input size; a saved model's own when evaluating)",
               evaluate=True),
    DataOption("augment", bool, True, "augment the training split: crop+flip for CIFAR/SVHN, RandomResizedCrop+flip "
               "for image folders, none for digits/MNIST"),
    DataOption("num_workers", int, 0, "DataLoader worker processes"),
    DataOption("pin_memory", bool, None, "pin host memory for faster GPU copies (default: when CUDA is present)"),
    DataOption("train_subset", int, None, "train on this many images of the training split, a seeded random subset "
               "(default: all; the data spec records the size)"),
    DataOption("image_column", str, None, "Hugging Face data: the image column (default: image or img, else the "
               "only Image column)", evaluate=True),
    DataOption("label_column", str, None, "Hugging Face data: the label column (default: label or labels, else the "
               "only ClassLabel column)", evaluate=True),
)  # fmt: skip
# --- end issue 16 ---
_NESTED = {"pretrain": TrainConfig, "finetune": TrainConfig, "grow_train": TrainConfig, "prune": PruneConfig,
           "attack": AttackConfig}  # fmt: skip


def config_paths() -> list[str]:
    """Every leaf field of :class:`RobustifyConfig` as a dotted path (``"pretrain.attack.eps"``), less ``data``
    (robustify's positional argument, the CLI's ``--dataset``)."""

    def walk(cls: type, prefix: str) -> list[str]:
        out = []
        for f in dataclasses.fields(cls):
            path = prefix + f.name
            out += walk(_NESTED[f.name], path + ".") if f.name in _NESTED else [path]
        return out

    return [p for p in walk(RobustifyConfig, "") if p != "data"]


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def option_default(option: Option) -> Any:
    """The value ``RobustifyConfig()`` gives the option's first field (after its defaults are filled in)."""
    return _get(RobustifyConfig(), option.paths[0])


def field_type(option: Option) -> Any:
    """The type annotation of the option's first field (``int``, ``float | None``, ``tuple[str, ...]``...)."""
    cls: type = RobustifyConfig
    *parents, leaf = option.paths[0].split(".")
    for part in parents:
        cls = _NESTED[part]
    return typing.get_type_hints(cls)[leaf]


def build_config(*, config: RobustifyConfig | None = None, data: str = "digits", **options: Any) -> RobustifyConfig:
    """The :class:`RobustifyConfig` of the given flat options (None means "the default").

    Args:
        config: a full config to use as it is; then no option may be given.
        data: the data's name recorded in the config.
        **options: any of :data:`OPTIONS`.

    Raises:
        ConfigError: an unknown option, options beside ``config=``, or ``attack=`` beside a training-attack
            option (``eps``, ``train_steps``...).
    """
    given = {name: value for name, value in options.items() if value is not None}
    unknown = sorted(set(given) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"Unknown option(s) {', '.join(unknown)}. Known: {', '.join(_BY_NAME)}.")
    if config is not None:
        if given:
            raise ConfigError(
                f"config= is given, so {', '.join(sorted(given))} would be ignored. Put them into the config "
                "(dataclasses.replace(config, ...)) or pass the options without config=."
            )
        return config
    attack_fields = sorted(name for name in given if _BY_NAME[name].paths[0].startswith("pretrain.attack."))
    if "attack" in given and attack_fields:
        raise ConfigError(
            f"attack= and {', '.join(attack_fields)} both set the training attack: put "
            f"{', '.join(attack_fields)} into the AttackConfig, or drop attack=."
        )
    # The constructor arguments of the default config, with the options on top: every config is then built by
    # its own constructor, so a default that depends on an option (PruneConfig's scope follows the structure,
    # the learning rates follow the objective) sees the option.
    tree: dict[str, Any] = {"data": data}
    tree.update({stage: {**kwargs, "attack": dict(TRAIN_ATTACK)} for stage, kwargs in STAGES.items()})
    method_defaults = method_prune_defaults(given.get("method"))
    if method_defaults:  # iwi's ticket structure and sparsity, unless given
        tree["prune"] = method_defaults
    for name, value in given.items():
        for path in _BY_NAME[name].paths:
            *parents, leaf = path.split(".")
            node = tree
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
    return RobustifyConfig.from_dict(tree)
