"""One small RobustifyResult of every kind a user can publish: dense, channel-pruned, weight-masked, lottery ticket
and grown (test_resnet on 32x32 digits), built the way the library builds them."""

from __future__ import annotations

import copy
import warnings

import torch
from torch.utils.data import DataLoader, Subset

import robust_prune as rp
from robust_prune import AttackConfig, PruneConfig, RobustifyConfig, TrainConfig
from robust_prune.api import RobustifyResult, prepare
from robust_prune.data.loading import DataBundle
from robust_prune.inheritance.growth import grow
from robust_prune.methods import get_method
from robust_prune.pruning.masks import make_permanent
from robust_prune.training.runner import StageRunner

KINDS = ("dense", "channel", "weight", "lottery", "grown")
TIMM_KINDS = ("dense", "weight", "grown")  # timm's own loader reads these (no channel removed)


def _evaluate(model: torch.nn.Module, bundle: DataBundle) -> rp.RobustnessReport:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an untrained model may trip the gradient-masking checks
        return rp.evaluate(model, bundle, attacks=("pgd",), n=32, steps=2, latency=False, progress=False)


def build_kinds() -> dict[str, RobustifyResult]:
    """One untrained (lottery: one epoch per round) result per kind."""
    torch.manual_seed(0)
    base, bundle = prepare("test_resnet", "digits")
    base.eval()
    out: dict[str, RobustifyResult] = {}

    def result(model, record, method: str, structure: str = "channel") -> RobustifyResult:
        config = RobustifyConfig(method=method, prune=PruneConfig(sparsity=0.5, structure=structure))
        return RobustifyResult(model.eval(), _evaluate(model, bundle), config, record, data=bundle.spec())

    dense = copy.deepcopy(base)
    out["dense"] = result(dense, rp.PruningRecord.for_dense_model(dense), "dense")

    channel = copy.deepcopy(base)
    _, record = rp.prune(channel, 0.5)
    out["channel"] = result(channel, record, "prune")

    weight = copy.deepcopy(base)
    _, wrecord = rp.prune(weight, 0.5, structure="weight")
    make_permanent(weight)
    out["weight"] = result(weight, wrecord, "prune", "weight")

    small = DataBundle(DataLoader(Subset(bundle.train.dataset, range(64)), batch_size=32),
                       DataLoader(Subset(bundle.test.dataset, range(32)), batch_size=32), 10, 3, 32, "digits",
                       bundle.default_eps)  # fmt: skip
    stage = TrainConfig(epochs=1, attack=AttackConfig(steps=1), lr=0.05)
    lottery = PruneConfig(structure="channel", sparsity=0.5, rounds=2, rewind_epoch=1)
    config = RobustifyConfig(method="lottery", pretrain=stage, finetune=stage, prune=lottery, eval_steps=2, eval_n=32)
    out["lottery"] = get_method("lottery").run(copy.deepcopy(base), small, config, runner=StageRunner(), progress=False)

    grown = grow(out["channel"].model, record=out["channel"].record).model
    with torch.no_grad():  # give the grown channels non-zero outgoing weights, as adversarial training would
        for p in grown.parameters():
            p.add_(0.01 * torch.randn_like(p))
    out["grown"] = result(grown, grown.record, "iwi")
    return out
