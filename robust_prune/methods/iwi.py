"""``method="iwi"``: inverse weights inheritance (finding 3): a ticket -> :func:`~robust_prune.grow` back to full
width -> adversarial training of the full-width model.

The ticket comes from the method named by ``ticket_method`` (``prune`` or ``lottery``), with its own stages;
growth (stage ``grow``) and the grown model's training (stage ``grown``) follow, all checkpointed, so a killed
run resumes exactly. The ticket's report, measured before growth, travels in the record's ``extra``.

Example:
    A tiny budget: a channel ticket after one PGD-1 epoch, grown back without training.

    >>> import robust_prune as rp
    >>> result = rp.robustify("test_resnet", method="iwi", ticket_method="prune", structure="channel", sparsity=0.5,
    ...                       epochs=1, finetune_epochs=0, grow_epochs=0, train_steps=1, eval_n=8, eval_steps=1,
    ...                       progress=False)
    >>> result.ticket_report.macs < result.report.macs  # the grown model is full width again
    True
"""

from __future__ import annotations

from ..config import RobustifyConfig
from ..data import DataBundle
from ..inheritance import grow
from ..models import NormalizedModel
from ..report import RobustnessReport
from ..result import RobustifyResult, evaluate_for
from ..runner import StageRunner
from ..training import EpochStats
from . import get_method, register_method

__all__ = ["run"]


def _epochs(config: RobustifyConfig) -> int:
    ticket_method = get_method(config.ticket_method)
    return ticket_method.epochs(config) + config.grow_train.epochs


@register_method("iwi", epochs=_epochs, help="inverse weights inheritance: a ticket, grown back to full width, trained")
def run(
    model: NormalizedModel, bundle: DataBundle, config: RobustifyConfig, *, runner: StageRunner, progress: bool
) -> RobustifyResult:
    """Make the ticket, measure it, grow it back to full width inside ``model``, train and measure that."""
    if runner.needs("grow"):
        made = get_method(config.ticket_method).ticket(model, bundle, config, runner=runner, progress=progress)
        ticket_report = evaluate_for(model, bundle, config, progress=progress)
        grown = grow(model, record=made.record, init=config.grow_init, scale=config.grow_scale,
                     out_scale=config.grow_out_scale, seed=config.seed)  # fmt: skip
        model.model = grown.model.model  # the full-width timm module takes the ticket's place in the same wrapper
        grown.record.extra.update(
            method="iwi", ticket_method=config.ticket_method, ticket_report=ticket_report.to_dict()
        )
        ticket_history = [h.to_dict() for h in made.history]
        runner.finish_stage("grow", model, record=grown.record, extra={"ticket_history": ticket_history})
    runner.restore(model)
    record = runner.record
    assert record is not None, "the grow stage leaves a record"
    history = [EpochStats(**h) for h in runner.extra["ticket_history"]]
    train_eps, _ = config.budgets(bundle.default_eps)
    history += runner.train(model, bundle.train, stage="grown", label="adversarial training (grown)",
                            config=config.grow_train, eps=train_eps, seed=config.seed + 2,
                            progress=progress)  # fmt: skip
    report = evaluate_for(model, bundle, config, progress=progress)
    ticket_report = RobustnessReport.from_dict(record.extra["ticket_report"])
    return RobustifyResult(model, report, config, record, history, bundle.spec(), ticket_report=ticket_report)
