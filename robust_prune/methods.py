"""The methods ``robustify()`` runs, one small function each, registered by name.

A method receives the prepared model, the data and the config, chains public stages (train, prune,
grow, evaluate) and returns a :class:`RobustifyResult`. ``lottery`` and ``iwi`` register themselves
from their own modules.
"""

from __future__ import annotations

from collections.abc import Callable

from .api import RobustifyResult, _eval
from .checkpoint import active_run
from .config import RobustifyConfig
from .data import DataBundle
from .errors import ConfigError
from .models import NormalizedModel
from .pruning import PruningRecord, prune

__all__ = ["register_method", "run_method", "list_methods"]

MethodFn = Callable[[NormalizedModel, DataBundle, RobustifyConfig, bool], RobustifyResult]
_METHODS: dict[str, MethodFn] = {}


def register_method(name: str) -> Callable[[MethodFn], MethodFn]:
    """Register ``fn(model, bundle, config, progress) -> RobustifyResult`` as ``robustify(method=name)``."""

    def decorate(fn: MethodFn) -> MethodFn:
        _METHODS[name] = fn
        return fn

    return decorate


def list_methods() -> list[str]:
    _load_optional_methods()
    return sorted(_METHODS)


def _load_optional_methods() -> None:
    import importlib

    for module in ("robust_prune.pruning.lottery", "robust_prune.inheritance"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def run_method(model: NormalizedModel, bundle: DataBundle, config: RobustifyConfig, *, progress: bool = True):
    """Run ``config.method`` on a prepared model and data."""
    _load_optional_methods()
    try:
        fn = _METHODS[config.method]
    except KeyError:
        known = ", ".join(sorted(_METHODS))
        raise ConfigError(f"Method {config.method!r} is not available; choose one of {known}.") from None
    return fn(model, bundle, config, progress)


def dense_record(model: NormalizedModel) -> PruningRecord:
    """The record of an unpruned model: enough to rebuild it from timm."""
    from robust_prune.adapters import get_adapter

    adapter = get_adapter(model, warn=False)
    inner = model.model
    size = adapter.fixed_input_size(inner)
    return PruningRecord(
        structure="none",
        sparsity=0.0,
        adapter=adapter.name,
        architecture=adapter.architecture(inner),
        model_args=adapter.model_args(inner),
        input_size=[adapter.in_chans(inner), *(size or (32, 32))],
    )


@register_method("dense")
def _dense(model: NormalizedModel, bundle: DataBundle, config: RobustifyConfig, progress: bool) -> RobustifyResult:
    run = active_run()
    history = run.train(model, bundle.train, stage="pretrain", label="adversarial training", config=config.pretrain,
                        eps=bundle.default_eps, seed=config.seed, progress=progress)
    report = _eval(model, bundle, config, progress)
    return RobustifyResult(model.eval(), report, config, dense_record(model), history, bundle.spec())


@register_method("prune")
def _prune(model: NormalizedModel, bundle: DataBundle, config: RobustifyConfig, progress: bool) -> RobustifyResult:
    run = active_run()
    history = run.train(model, bundle.train, stage="pretrain", label="adversarial training", config=config.pretrain,
                        eps=bundle.default_eps, seed=config.seed, progress=progress)
    p = config.prune
    record = run.record
    if run.needs("prune"):
        _, record = prune(model, p.sparsity, structure=p.structure, importance=p.importance, scope=p.scope,
                          prune_first_layer=p.prune_first_layer, prune_classifier=p.prune_classifier,
                          round_to=p.round_to, image_size=bundle.image_size,
                          loss_fn=_loss_fn(bundle, config) if p.importance in ("taylor", "robust") else None)
        run.finish_stage("prune", model, record=record)
    history += run.train(model, bundle.train, stage="finetune", label="adversarial fine-tuning", config=config.finetune,
                         eps=bundle.default_eps, seed=config.seed + 1, progress=progress)
    if p.structure == "weight":
        from .pruning.unstructured import make_permanent

        make_permanent(model)
    report = _eval(model, bundle, config, progress)
    return RobustifyResult(model.eval(), report, config, record, history, bundle.spec())


def _loss_fn(bundle: DataBundle, config: RobustifyConfig, batches: int = 4):
    """The adversarial loss on a few training batches, for gradient-based importance scores."""
    from .training import adversarial_loss

    attack = config.pretrain.attack
    attack = attack if attack.eps is not None else attack.with_eps(bundle.default_eps)

    def loss_fn(model):
        total = 0.0
        for i, (x, y) in enumerate(bundle.train):
            if i >= batches:
                break
            loss, _, _ = adversarial_loss(model, x, y, objective="pgd-at", attack=attack)
            total = total + loss
        return total / batches

    return loss_fn
