"""Prune test_resnet once in this process, for tests/test_distributed.py: every process scores on its own data.

Under ``torchrun`` each process takes its own share of 64 digits images (``rank::world_size``), so gradient
importances differ between the processes unless the library agrees on them; ``--seed-by-rank`` also gives each
process its own RNG (random importance). Writes ``record-rank{R}.json`` (the pruning record) and, for weight
pruning, ``masks-rank{R}.safetensors``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--structure", default="channel")
    parser.add_argument("--importance", default="taylor")
    parser.add_argument("--seed-by-rank", action="store_true")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        torch.distributed.init_process_group("gloo")

    import timm
    import torch.nn.functional as F

    import robust_prune as rp
    from robust_prune import distributed
    from robust_prune.atomic import write_json, write_safetensors
    from robust_prune.data.loading import first_n, load_data
    from robust_prune.models import NormalizedModel

    x, y = first_n(load_data("digits", image_size=32, channels=3, seed=0).train, 64)
    rank, world = distributed.rank(), distributed.world_size()
    x, y = x[rank::world], y[rank::world]  # this process's share: the processes score on different images
    torch.manual_seed(0)  # the same weights everywhere
    model = NormalizedModel.from_timm(timm.create_model("test_resnet", num_classes=10))
    if args.seed_by_rank:
        torch.manual_seed(100 + rank)
    record = rp.prune(model, 0.5, structure=args.structure, importance=args.importance,
                      loss_fn=lambda m: F.cross_entropy(m(x), y)).record  # fmt: skip
    out = Path(args.out)
    write_json(out / f"record-rank{rank}.json", {k: v for k, v in record.to_dict().items() if k != "stats"})
    if record.masks:
        masks = {k: v.to(torch.uint8) for k, v in record.masks.items()}
        write_safetensors(out / f"masks-rank{rank}.safetensors", masks)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
