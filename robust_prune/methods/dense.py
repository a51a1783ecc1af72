"""``method="dense"``: adversarial training of the unpruned model, the baseline every method is compared with."""

from __future__ import annotations

from ..config import RobustifyConfig
from ..data import DataBundle
from ..models import NormalizedModel
from ..pruning.record import PruningRecord
from ..result import RobustifyResult, evaluate_for
from ..runner import StageRunner
from . import register_method

__all__ = ["run"]


@register_method(
    "dense",
    epochs=lambda config: config.pretrain.epochs,
    help="adversarial training of the unpruned model (the baseline)",
)
def run(
    model: NormalizedModel, bundle: DataBundle, config: RobustifyConfig, *, runner: StageRunner, progress: bool
) -> RobustifyResult:
    """Train ``model`` for ``config.pretrain`` and evaluate it."""
    train_eps, _ = config.budgets(bundle.default_eps)
    history = runner.train(model, bundle.train, stage="pretrain", label="adversarial training",
                           config=config.pretrain, eps=train_eps, seed=config.seed, progress=progress)  # fmt: skip
    report = evaluate_for(model, bundle, config, progress=progress)
    record = PruningRecord.for_dense_model(model, image_size=bundle.image_size)  # the size it was trained at
    return RobustifyResult(model, report, config, record, history, bundle.spec())
