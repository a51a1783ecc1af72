"""``robustify()``: chains the public stages for one ``method`` and returns a measured result.

Data flows one way: timm model -> adapter -> adversarial training -> pruning -> ticket ->
adversarial fine-tuning (or grow -> adversarial training) -> evaluation -> report -> save / push.
Each stage is a public function; this module only orchestrates them.
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import Any

import torch
from torch import nn

from robust_prune.adapter_api import get_adapter

from . import distributed
from .config import AttackConfig, RobustifyConfig
from .data.catalog import DATASETS
from .data.hf_datasets import HFSplits, default_side, hf_splits, is_hf_data
from .data.loading import DataBundle, load_data
from .data.transforms import check_image_size, resolve_image_size
from .distributed import is_main_process, model_device
from .errors import ModelAdaptationError
from .methods import dense, get_method, iwi, lottery, prune  # noqa: F401 - each method module registers itself
from .methods._stages import importance_loss
from .models import NormalizedModel, adapt_model, create_model
from .options import DATA_OPTIONS, build_config
from .pruning.structured import channel_prune
from .result import RobustifyResult
from .training.adversarial import check_precision
from .training.determinism import deterministic as deterministic_algorithms
from .training.runner import StageRunner, open_run_directory

__all__ = ["RobustifyResult", "robustify", "prepare"]


def prepare(
    model: nn.Module | str,
    data: Any = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    batch_size: int = 64,
    seed: int = 0,
    image_size: int | None = None,
    augment: bool = True,
    num_workers: int = 0,
    pin_memory: bool | None = None,
    train_subset: int | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> tuple[NormalizedModel, DataBundle]:
    """Fit a timm model (or model name) to the data: classes, channels and input size; wrap it for pixel space.

    Images are read at ``image_size`` (default: a named dataset's native resolution, digits at 32; an image folder at
    the model's pretrained input size; a model with a fixed input size at that size), the training split augmented
    unless ``augment=False`` (:mod:`robust_prune.data.transforms`); ``num_workers``/``pin_memory`` go to the
    DataLoaders; ``train_subset`` trains on a seeded subset of that many images.
    Hugging Face data (:mod:`robust_prune.data.hf_datasets`, columns ``image_column``/``label_column``) is read once, at
    its images' own size.

    Example:
        >>> model, bundle = prepare("resnet10t", "digits")
        >>> bundle.num_classes, model.model.num_classes
        (10, 10)
    """
    check_image_size(image_size)
    if is_hf_data(data):  # read (for hf:, download) once: for the probe and the run
        data = hf_splits(data, image_column=image_column, label_column=label_column)
    if isinstance(model, str):
        model = create_model(model, num_classes=_num_classes(data, data_dir, download, batch_size, seed))
    if not isinstance(model, nn.Module):
        raise ModelAdaptationError(
            f"robustify() needs a timm model or its name, got {type(model).__name__}. "
            "Example: robustify(timm.create_model('resnet18', num_classes=10))."
        )
    adapter = get_adapter(model)
    default = default_side(data, image_size, adapter.pretrained_input_size(model))
    size = resolve_image_size(data, image_size, fixed=adapter.fixed_input_size(model), pretrained=default)
    bundle = load_data(
        data,
        image_size=size,
        channels=adapter.in_chans(model),
        batch_size=batch_size,
        data_dir=data_dir,
        download=download,
        seed=seed,
        augment=augment,
        num_workers=num_workers,
        pin_memory=pin_memory,
        train_subset=train_subset,
    )
    adapt_model(model, num_classes=bundle.num_classes)
    return NormalizedModel.from_timm(model), bundle


def _num_classes(data: Any, data_dir: Any, download: bool, batch_size: int, seed: int) -> int:
    """The classes of ``data`` before a model exists: declared for a named dataset, else read from the data."""
    info = DATASETS.get("digits" if data is None else str(data)) if isinstance(data, (str, type(None))) else None
    if info is not None and info.num_classes is not None:
        return info.num_classes
    probe = load_data(data, data_dir=data_dir, download=download, batch_size=batch_size, seed=seed, image_size=8,
                      augment=False)  # fmt: skip
    return probe.num_classes


def robustify(
    model: nn.Module | str,
    data: Any = None,
    *,
    method: str | None = None,
    sparsity: float | None = None,
    structure: str | None = None,
    importance: str | None = None,
    scope: str | None = None,
    prune_first_layer: bool | None = None,
    prune_classifier: bool | None = None,
    round_to: int | None = None,
    attention: str | None = None,
    rounds: int | None = None,
    rewind_epoch: int | None = None,
    reinit: bool | None = None,
    adversarial: bool | None = None,
    epochs: int | None = None,
    finetune_epochs: int | None = None,
    grow_epochs: int | None = None,
    lr: float | None = None,
    finetune_lr: float | None = None,
    grow_lr: float | None = None,
    objective: str | None = None,
    momentum: float | None = None,
    weight_decay: float | None = None,
    schedule: str | None = None,
    trades_beta: float | None = None,
    mixed_precision: str | None = None,
    channels_last: bool | None = None,
    checkpoint_every: int | None = None,
    sync_bn: bool | None = None,
    attack: AttackConfig | None = None,
    eps: float | None = None,
    train_steps: int | None = None,
    step_size: float | None = None,
    train_restarts: int | None = None,
    random_start: bool | None = None,
    train_norm: str | None = None,
    train_attack: str | None = None,
    attack_seed: int | None = None,
    ticket_method: str | None = None,
    grow_init: str | None = None,
    grow_scale: float | None = None,
    grow_out_scale: float | None = None,
    eval_attacks: tuple[str, ...] | list[str] | None = None,
    eval_eps: float | None = None,
    eval_steps: int | None = None,
    eval_n: int | None = None,
    seed: int | None = None,
    deterministic: bool | None = None,
    config: RobustifyConfig | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    batch_size: int = 64,
    image_size: int | None = None,
    augment: bool = True,
    num_workers: int = 0,
    pin_memory: bool | None = None,
    train_subset: int | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    progress: bool = True,
    run_dir: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | bool | None = None,
    overwrite: bool = False,
) -> RobustifyResult:
    """Make a timm model smaller and adversarially robust, and measure it honestly.

    Every option left at ``None`` takes :class:`RobustifyConfig`'s default, so ``robustify(model, method=m)``
    runs exactly ``RobustifyConfig(method=m)`` (see :mod:`robust_prune.options` for the table of options and
    the config fields each one sets).

    Args:
        model: a timm model (or a timm model name); its classifier is fitted to the data. Methods change it in
            place; the result's ``model`` wraps it (normalisation inside).
        data: ``None`` (embedded digits), a dataset name, an image folder, ``(train, test)`` loaders (which
            carry no attack budget: pass ``attack=``/``eps=`` or ``eval_eps=``), or Hugging Face data: a
            ``DatasetDict``, a ``(train, test)`` pair of ``datasets.Dataset`` or ``"hf:REPO[:CONFIG]"``.
        method: ``"dense"``, ``"prune"`` (default), ``"lottery"`` or ``"iwi"``
            (:func:`robust_prune.methods.list_methods`).
        sparsity, structure, importance, scope, prune_first_layer, prune_classifier, round_to, attention: what to
            remove and how to choose it (:class:`PruneConfig`; default 50% of the channels by magnitude, kept
            counts rounded to multiples of 8, whole attention heads).
        rounds, rewind_epoch, reinit, adversarial: ``method="lottery"``: pruning rounds, the epoch the ticket
            rewinds to (0 = the initialisation), re-initialise the final ticket instead (the control), and
            adversarial (True) or clean (False) training while pruning.
        epochs, finetune_epochs, grow_epochs: training epochs before pruning (6), of the pruned model (3) and,
            for ``iwi``, of the grown model (3).
        lr, finetune_lr, grow_lr: learning rates; by default the objective's (0.05 for PGD-AT, 0.02 for TRADES),
            half of it for fine-tuning, the same for the grown model.
        objective, momentum, weight_decay, schedule, trades_beta, mixed_precision, channels_last,
            checkpoint_every, sync_bn: training settings of every stage (:class:`TrainConfig`).
        attack: the training adversary of every stage (default PGD-5, L-inf, the dataset's eps); or set its
            fields one by one with eps, train_steps, step_size, train_restarts, random_start, train_norm,
            train_attack and attack_seed.
        ticket_method, grow_init, grow_scale, grow_out_scale: ``method="iwi"``: where the ticket comes from
            (``"prune"`` or ``"lottery"``), how growth fills new weights (``"zero-out"``, ``"zero"`` and
            ``"net2net"`` keep the ticket's function; ``"small-out"``, ``"random"`` do not), the std of new
            channels' incoming weights and ``small-out``'s relative std (:func:`robust_prune.grow`). With
            ``method="iwi"`` and no ``structure``, the ticket's structure is ``IWI_DEFAULT``'s.
        eval_attacks, eval_eps, eval_steps, eval_n: the report's attacks (PGD), L-inf budget (the training
            attack's L-inf eps when set, else the dataset's), PGD steps (20) and test points (all).
        seed: makes the whole run deterministic on one machine.
        deterministic: bit-exact CUDA runs through PyTorch's deterministic algorithms, at a cost in speed
            (:mod:`robust_prune.training.determinism`); without it a seeded CUDA run is reproducible only up to the
            last bits.
        config: a full :class:`RobustifyConfig` instead of the options above (giving both is an error).
        data_dir, download, batch_size: where a named dataset's files are, whether to fetch them, the training batch
            size (the global batch: under torchrun each of N processes takes batch_size / N images of every step, so
            N processes train like one; BatchNorm is synchronised when that share is small, see ``sync_bn``).
        image_size, augment, num_workers, pin_memory, train_subset: how the data is read (:func:`prepare`; recorded
            in the result's data spec).
        image_column, label_column: Hugging Face data's image and label columns (default: found by name).
        progress: show progress bars (on the main process only).
        run_dir: checkpoint every stage into this folder (see :mod:`robust_prune.training.runner`).
        resume: a run directory (or True with ``run_dir``) to continue from its last checkpoint; the
            options must be the ones the run was started with.
        overwrite: start afresh in a ``run_dir`` that holds checkpoints, discarding them (without it such a start
            raises ``RunDirectoryExistsError`` and nothing is deleted).

    Raises:
        ConfigError: a bad option value, options beside ``config=``, or no attack budget for user loaders.

    Example:
        A tiny budget (one epoch of PGD-1 training on the embedded digits, 16 evaluation points); the defaults
        train for longer and evaluate every test point.

        >>> import robust_prune as rp
        >>> result = rp.robustify("test_resnet", "digits", method="prune", sparsity=0.5, epochs=1, finetune_epochs=0,
        ...                       train_steps=1, eval_n=16, eval_steps=1, progress=False)
        >>> [stats.stage for stats in result.history], result.record.structure, result.report.n
        (['adversarial training'], 'channel', 16)
        >>> result.record.stats["macs_ratio"] < 0.5  # half of the channels: about a quarter of the MACs
        True
    """
    options = {k: v for k, v in locals().items() if k not in _NOT_CONFIG}
    if is_hf_data(data):  # read once; its name goes into the config
        data = hf_splits(data, image_column=image_column, label_column=label_column)
    data_name = "digits" if data is None else str(data) if isinstance(data, (str, os.PathLike)) else "loaders"
    data_name = data.name if isinstance(data, HFSplits) else data_name
    config = build_config(config=options.pop("config"), data=data_name, **options)
    for stage in (config.pretrain, config.finetune, config.grow_train):  # before anything is read or written
        check_precision(stage, distributed.device())
    torch.manual_seed(config.seed)
    if data is None and config.data != "digits":
        data = config.data
    net, bundle = prepare(
        model, data, data_dir=data_dir, download=download, batch_size=batch_size, seed=config.seed,
        image_size=image_size, augment=augment, num_workers=num_workers, pin_memory=pin_memory,
        train_subset=train_subset,
        image_column=image_column, label_column=label_column,
    )  # fmt: skip
    config.budgets(bundle.default_eps)  # refuse a run without an attack budget before anything is written
    with deterministic_algorithms(config.deterministic):  # from the first model computation (the dry prune) on
        if config.method != "dense" and config.prune.structure == "channel":
            _refuse_unprunable(net, config, bundle)
        runner = StageRunner(open_run_directory(run_dir, resume, config, net, bundle, overwrite=overwrite))
        progress = progress and is_main_process()  # one set of progress bars under torchrun
        return get_method(config.method).run(net, bundle, config, runner=runner, progress=progress)


def _refuse_unprunable(net: NormalizedModel, config: RobustifyConfig, bundle: DataBundle) -> None:
    """A dry run of the run's own channel prune (``config.prune`` itself: attention, round_to, scope, importance,
    at the data's size, with the run's importance loss) on a copy, under the pruning time bound, so that a family
    the run cannot prune is refused (FamilyPruningError) before minutes of training rather than after them. The
    copy's result is thrown away, and the RNGs are left as they were (tracing draws a random example; a gradient
    importance attacks a few batches), so the run trains exactly as it would without the check."""
    cuda = model_device(net).type == "cuda"
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[model_device(net)] if cuda else []):
        warnings.simplefilter("ignore")  # prepare() already warned about a generic fallback
        channel_prune(copy.deepcopy(net), config.prune, image_size=bundle.image_size,
                      loss_fn=importance_loss(bundle, config))  # fmt: skip


# robustify()'s arguments that are not config options
_NOT_CONFIG = {"model", "data", "data_dir", "download", "batch_size", "progress", "run_dir", "resume", "overwrite",
               *(option.name for option in DATA_OPTIONS)}  # fmt: skip
