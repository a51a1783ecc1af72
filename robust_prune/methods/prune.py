"""``method="prune"``: adversarial training -> prune to ``sparsity`` -> adversarial fine-tuning with the inherited
weights (the paper's finding 1). Its :func:`ticket` is also where ``method="iwi"`` gets a one-shot ticket."""

from __future__ import annotations

from ..config import RobustifyConfig
from ..data import DataBundle
from ..models import NormalizedModel
from ..pruning import prune
from ..pruning.masks import make_permanent
from ..result import RobustifyResult
from ..runner import StageRunner
from . import register_method
from ._stages import Ticket, importance_loss, measured_ticket

__all__ = ["run", "ticket"]


def ticket(
    model: NormalizedModel, bundle: DataBundle, config: RobustifyConfig, *, runner: StageRunner, progress: bool
) -> Ticket:
    """Train, prune and fine-tune ``model`` in place (stages ``pretrain``, ``prune``, ``finetune``).

    Weight masks are folded into the weights at the end (the record keeps them).
    """
    train_eps, _ = config.budgets(bundle.default_eps)
    history = runner.train(model, bundle.train, stage="pretrain", label="adversarial training",
                           config=config.pretrain, eps=train_eps, seed=config.seed, progress=progress)  # fmt: skip
    p = config.prune
    if runner.needs("prune"):
        result = prune(model, p, image_size=bundle.image_size, loss_fn=importance_loss(bundle, config))
        runner.finish_stage("prune", model, record=result.record)
    history += runner.train(model, bundle.train, stage="finetune", label="adversarial fine-tuning",
                            config=config.finetune, eps=train_eps, seed=config.seed + 1, progress=progress)  # fmt: skip
    record = runner.record
    assert record is not None, "the prune stage leaves a record"
    if p.structure == "weight":
        record.masks = make_permanent(model)
    model.record = record
    return Ticket(record, history)


@register_method(
    "prune",
    epochs=lambda config: config.pretrain.epochs + config.finetune.epochs,
    help="adversarial training, prune to --sparsity, adversarial fine-tuning with the inherited weights",
    ticket=ticket,
)
def run(
    model: NormalizedModel, bundle: DataBundle, config: RobustifyConfig, *, runner: StageRunner, progress: bool
) -> RobustifyResult:
    """:func:`ticket`, then evaluate it."""
    return measured_ticket(ticket, model, bundle, config, runner=runner, progress=progress)
