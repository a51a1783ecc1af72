"""A small robustify run in its own process, for tests/test_resume.py and tests/test_distributed.py.

Runs ``robustify`` on ``test_resnet`` with a subset of the embedded digits and writes what the tests
compare: the final weights of *this* process (``--weights-dir/rank{R}.safetensors``), its report, and
the list of files this process wrote through robust_prune's atomic writers (``writes-rank{R}.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset


class _Slow(Dataset):
    """Sleeps per item so that a test can kill the run in the middle of an epoch."""

    def __init__(self, base: Dataset, delay: float) -> None:
        self.base, self.delay = base, delay
        self.classes = list(range(10))  # the subset may miss a digit in its first batch: name all ten

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        if self.delay:
            time.sleep(self.delay)
        return self.base[i]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", default="prune")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--grow-epochs", type=int, default=1)
    parser.add_argument("--structure", default="channel")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--rewind-epoch", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=96)
    parser.add_argument("--n-test", type=int, default=45)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--eval-attacks", default="pgd", help="comma-separated; empty for clean accuracy only")
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--resume", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--weights-dir", required=True)
    parser.add_argument("--batch-size", type=int, default=16, help="the global training batch (split over processes)")
    parser.add_argument("--sync-bn", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--train-steps", type=int, default=2)
    parser.add_argument("--eval-steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    import timm

    import robust_prune as rp
    from robust_prune import atomic as _io
    from robust_prune import distributed
    from robust_prune.data.loading import load_data

    bundle = load_data("digits", image_size=32, channels=3, batch_size=32, seed=0)
    train_set = _Slow(Subset(bundle.train.dataset, range(args.n_train)), args.delay)
    test_set = Subset(bundle.test.dataset, range(args.n_test))
    train = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    test = DataLoader(test_set, batch_size=16)

    writes: list[str] = []
    atomic = _io._atomic

    def spy(path, write):  # record every file this process writes through robust_prune
        writes.append(str(path))
        return atomic(path, write)

    _io._atomic = spy
    attack = rp.AttackConfig(eps=0.1, steps=args.train_steps)  # the digits' budget: user loaders carry none
    sync_bn = {"auto": None, "on": True, "off": False}[args.sync_bn]
    config = rp.RobustifyConfig(
        method=args.method,
        data="loaders",
        seed=0,
        pretrain=rp.TrainConfig(epochs=args.epochs, attack=attack, lr=0.05, sync_bn=sync_bn),
        finetune=rp.TrainConfig(epochs=args.finetune_epochs, attack=attack, lr=0.025, sync_bn=sync_bn),
        grow_train=rp.TrainConfig(epochs=args.grow_epochs, attack=attack, lr=0.05, sync_bn=sync_bn),
        prune=rp.PruneConfig(sparsity=args.sparsity, structure=args.structure, rounds=args.rounds,
                             rewind_epoch=args.rewind_epoch),  # fmt: skip
        ticket_method="prune",  # iwi: pinned, so the stages checked do not follow IWI_DEFAULT
        grow_init="zero-out",
        eval_steps=args.eval_steps,
        eval_attacks=tuple(a for a in args.eval_attacks.split(",") if a),
    )
    torch.manual_seed(0)  # the same initial weights in every run and every process
    model = timm.create_model("test_resnet", num_classes=10)
    result = rp.robustify(model, (train, test), config=config, progress=False, run_dir=args.run_dir, resume=args.resume)
    if args.out:
        result.save_pretrained(args.out)
    _io._atomic = atomic
    rank = distributed.rank()
    out = Path(args.weights_dir)
    out.mkdir(parents=True, exist_ok=True)
    _io.write_safetensors(out / f"rank{rank}.safetensors", result.model.state_dict())
    report = result.report
    facts = {
        "writes": writes,
        "world_size": distributed.world_size(),
        "n": report.n,
        "clean_accuracy": report.clean_accuracy,
        "robust_accuracy": report.robust_accuracy,
        "attack_n": {k: v.n for k, v in report.attacks.items()},
        "train_images": [h.images for h in result.history],
        "lr": [h.lr for h in result.history],
        "attacks": {k: {"accuracy": v.accuracy, "ci": [v.ci_low, v.ci_high], "correct": v.correct, "extra": v.extra}
                    for k, v in report.attacks.items()},  # fmt: skip
        "pid": os.getpid(),
    }
    _io.write_json(out / f"facts-rank{rank}.json", facts)
    print(json.dumps({"rank": rank, "n": report.n, "clean": report.clean_accuracy}))


if __name__ == "__main__":
    main()
