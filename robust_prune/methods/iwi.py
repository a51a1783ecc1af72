"""``method="iwi"``: inverse weights inheritance (finding 3): a ticket -> :func:`~robust_prune.grow` back to full
width -> adversarial training of the full-width model.

The ticket comes from the stages of the method named by ``ticket_method`` (``prune`` or ``lottery``); growth (stage
``grow``) and the grown model's training (stage ``grown``) follow, all checkpointed, so a killed run resumes exactly.
The ticket's report, measured before growth, travels in the record's ``extra``.

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
from ..inheritance.growth import grow
from ..pruning.record import PruningRecord
from ..result import evaluate_for
from ..training.runner import StageContext, Step, Train
from . import get_method, register_method
from ._stages import run_stages, seal_ticket

__all__ = ["IWI_DEFAULT", "stages"]

# The defaults of method="iwi" follow the variant that measured best in the paper's framing
# (benchmarks/results/iwi.md): the ticket's method, structure and sparsity and how growth fills new weights.
IWI_DEFAULT = {"ticket_method": "prune", "structure": "channel", "sparsity": 0.5, "grow_init": "zero-out"}


def _epochs(config: RobustifyConfig) -> int:
    ticket_method = get_method(config.ticket_method)
    return ticket_method.epochs(config) + config.grow_train.epochs


def _grow(context: StageContext) -> PruningRecord:
    """Seal and measure the ticket, then grow it back to full width inside the model."""
    model, bundle, config = context.model, context.bundle, context.config
    ticket = context.record
    seal_ticket(model, ticket, config)
    ticket_report = evaluate_for(model, bundle, config, progress=context.progress)
    grown = grow(model, record=ticket, init=config.grow_init, scale=config.grow_scale,
                 out_scale=config.grow_out_scale, seed=context.seed("grow"))  # fmt: skip
    model.model = grown.model.model  # the full-width timm module takes the ticket's place in the same wrapper
    grown.record.extra.update(method="iwi", ticket_method=config.ticket_method, ticket_report=ticket_report.to_dict())
    return grown.record


def stages(config: RobustifyConfig) -> list[Train | Step]:
    """The ticket method's stages, growth (``grow``) and adversarial training of the grown model (``grown``)."""
    ticket = get_method(config.ticket_method).stages(config)
    return [*ticket, Step("grow", _grow), Train("grown", config.grow_train, "adversarial training (grown)")]


register_method(
    "iwi",
    run=run_stages,
    stages=stages,
    epochs=_epochs,
    help="inverse weights inheritance: a ticket, grown back to full width, trained",
    card="Inverse weights inheritance: a pruned, adversarially trained ticket is grown back to full width and "
    "the large network is adversarially trained from it (finding 3).",
    prune_defaults={k: IWI_DEFAULT[k] for k in ("structure", "sparsity")},
    defaults={k: IWI_DEFAULT[k] for k in ("ticket_method", "grow_init")},
)
