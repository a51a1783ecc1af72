"""``method="prune"``: adversarial training -> prune to ``sparsity`` -> adversarial fine-tuning with the inherited
weights (the paper's finding 1). Its stages also make the one-shot ticket ``method="iwi"`` grows."""

from __future__ import annotations

from ..config import RobustifyConfig
from ..pruning import prune
from ..pruning.record import PruningRecord
from ..training.runner import StageContext, Step, Train
from . import register_method
from ._stages import importance_loss, run_stages

__all__ = ["stages"]


def _prune(context: StageContext) -> PruningRecord:
    model, bundle, config = context.model, context.bundle, context.config
    p = config.prune
    result = prune(model, p, image_size=bundle.image_size, loss_fn=importance_loss(bundle, config))
    return result.record


def stages(config: RobustifyConfig) -> list[Train | Step]:
    """Train (``pretrain``), prune (``prune``) and fine-tune (``finetune``) the model in place."""
    return [
        Train("pretrain", config.pretrain, "adversarial training"),
        Step("prune", _prune),
        Train("finetune", config.finetune, "adversarial fine-tuning"),
    ]


register_method(
    "prune",
    run=run_stages,
    stages=stages,
    epochs=lambda config: config.pretrain.epochs + config.finetune.epochs,
    help="adversarial training, prune to --sparsity, adversarial fine-tuning with the inherited weights",
    card="Adversarial training, pruning to the target sparsity, then adversarial fine-tuning with the inherited "
    "weights (finding 1 of the paper: sparsity from adversarial pruning does not hurt robustness).",
    ticket=True,
)
