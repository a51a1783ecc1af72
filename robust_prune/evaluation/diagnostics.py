"""Sparsity <-> robustness diagnostics: the quantities the paper's theory links to sparsity, measured.

Liao et al. (2022) bound the output change under an eps-perturbation by products of layer norms,
which sparsity shrinks, and relate robustness to how few ReLU activations flip under attack. This
module measures those quantities on a model and data:

- per-layer and global weight sparsity;
- per-layer weight norms (Frobenius and spectral) and the product-of-norms Lipschitz upper bound;
- the empirical logit change under random and under adversarial (PGD) perturbations of size eps;
- the fraction of ReLU-like activations whose sign flips under the adversarial perturbation.

The product bound multiplies each conv/linear layer's operator-norm bound (the spectral norm of the
reshaped kernel times sqrt(kernel area) for convolutions) and each BatchNorm's largest scale. It is a
true upper bound for plain feed-forward stacks; for residual networks it is the paper's quantity,
not a certified bound (skip connections add, they do not multiply).

Example:
    >>> import timm
    >>> from robust_prune.data.loading import first_n, load_data
    >>> model = timm.create_model("test_resnet", num_classes=10).eval()
    >>> x, y = first_n(load_data("digits").test, 8)
    >>> from robust_prune.evaluation.diagnostics import sparsity_diagnostics
    >>> diag = sparsity_diagnostics(model, x, y, eps=0.1, steps=2)
    >>> print(diag)  # doctest: +ELLIPSIS
    Sparsity diagnostics (8 points, Linf eps=0.1)
      global weight sparsity        0.00%
    ...
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robust_prune.adapter_api import unwrap_model

from ..config import AttackConfig
from ..distributed import model_device
from ..errors import ConfigError
from .attacks import preserve_state, run_attack
from .measure import weight_sparsity

__all__ = [
    "Diagnostics",
    "LayerNorms",
    "layer_norms",
    "lipschitz_product",
    "output_change",
    "activation_flips",
    "diagnose",
    "sparsity_diagnostics",
]

RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish)


@dataclass
class LayerNorms:
    """Norms of one conv/linear/BatchNorm layer's weight; ``operator`` bounds its L2 operator norm."""

    name: str
    kind: str
    sparsity: float
    frobenius: float
    spectral: float
    operator: float


def _conv_linear_norms(name: str, module: nn.Module) -> LayerNorms:
    weight = module.weight.detach().float()
    matrix = weight.flatten(1)
    spectral = float(torch.linalg.matrix_norm(matrix, ord=2)) if matrix.numel() else 0.0
    area = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    groups = getattr(module, "groups", 1)
    kind = "conv" if weight.dim() > 2 else "linear"
    # each input pixel appears in at most `area` patches: ||conv||_2 <= sqrt(area) * ||W||_2 (grouped: per group)
    operator = spectral * math.sqrt(area) if groups == 1 else _grouped_operator(weight, groups, area)
    return LayerNorms(
        name=name,
        kind=kind,
        sparsity=float((weight == 0).float().mean()),
        frobenius=float(weight.norm()),
        spectral=spectral,
        operator=operator,
    )


def _grouped_operator(weight: torch.Tensor, groups: int, area: int) -> float:
    per_group = weight.shape[0] // groups
    norms = [
        float(torch.linalg.matrix_norm(weight[g * per_group : (g + 1) * per_group].flatten(1), ord=2))
        for g in range(groups)
    ]
    return max(norms, default=0.0) * math.sqrt(area)


def _batchnorm_norms(name: str, module: nn.modules.batchnorm._BatchNorm) -> LayerNorms:
    ones = torch.ones(module.num_features, device=module.weight.device if module.weight is not None else None)
    var = module.running_var if module.running_var is not None else ones
    scale = 1.0 / torch.sqrt(var.detach().float() + module.eps)
    if module.weight is not None:
        scale = scale * module.weight.detach().float()
    return LayerNorms(
        name=name,
        kind="batchnorm",
        sparsity=float((scale == 0).float().mean()),
        frobenius=float(scale.norm()),
        spectral=float(scale.abs().max()),
        operator=float(scale.abs().max()),
    )


def layer_norms(model: nn.Module) -> list[LayerNorms]:
    """Norms of every conv, linear and BatchNorm layer, in module order.

    Example:
        >>> [n.kind for n in layer_norms(torch.nn.Sequential(torch.nn.Linear(2, 2)))]
        ['linear']
    """
    out: list[LayerNorms] = []
    for name, module in unwrap_model(model).named_modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)) and isinstance(module.weight, torch.Tensor):
            out.append(_conv_linear_norms(name, module))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_var is not None:
            out.append(_batchnorm_norms(name, module))
    return out


def lipschitz_product(norms: list[LayerNorms]) -> float:
    """Product of the layers' operator-norm bounds (``inf`` on overflow).

    Layers with a zero operator norm are skipped: in a residual network they are zero-initialised
    branches (timm's ``zero_init_last``) and the skip connection carries the signal.

    Example:
        >>> a, b = LayerNorms("a", "linear", 0.0, 2.0, 2.0, 2.0), LayerNorms("b", "linear", 0.0, 3.0, 3.0, 3.0)
        >>> round(lipschitz_product([a, b]), 6)
        6.0
    """
    log = sum(math.log(n.operator) for n in norms if n.operator > 0)
    return math.exp(log) if log < 700 else math.inf


def _random_delta(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator) -> torch.Tensor:
    if norm == "Linf":
        signs = torch.randint(0, 2, x.shape, generator=generator, device="cpu").to(x) * 2 - 1
        return signs * eps
    noise = torch.randn(x.shape, generator=generator, device="cpu").to(x)
    return noise / noise.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1)) * eps


def output_change(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "Linf",
    steps: int = 10,
    seed: int = 0,
    x_adv: torch.Tensor | None = None,
) -> dict[str, float]:
    """Mean L2 change of the logits under a random and under a PGD perturbation of size ``eps``.

    Returns ``random``, ``adversarial`` (mean ||f(x + d) - f(x)||_2) and their ratio. The random
    perturbation is a random corner of the Linf ball (or a random direction on the L2 sphere); pass
    ``x_adv`` to reuse adversarial examples already computed.

    Example:
        >>> import timm
        >>> from robust_prune.data.loading import first_n, load_data
        >>> model = timm.create_model("test_resnet", num_classes=10).eval()
        >>> x, y = first_n(load_data("digits").test, 8)
        >>> sorted(output_change(model, x, y, eps=0.1, steps=2))
        ['adversarial', 'random', 'ratio']
    """
    generator = torch.Generator().manual_seed(seed)
    if x_adv is None:
        x_adv = run_attack(model, x, y, AttackConfig(name="pgd", norm=norm, eps=eps, steps=steps, seed=seed))
    with preserve_state(model), torch.no_grad():
        clean = model(x)
        rand = model((x + _random_delta(x, eps, norm, generator)).clamp(0, 1))
        adv = model(x_adv)
    r = float((rand - clean).norm(dim=1).mean())
    a = float((adv - clean).norm(dim=1).mean())
    return {"random": r, "adversarial": a, "ratio": a / r if r > 0 else math.inf}


def activation_flips(model: nn.Module, x: torch.Tensor, x_perturbed: torch.Tensor) -> dict[str, float]:
    """Fraction of ReLU-like pre-activations whose sign changes between ``x`` and ``x_perturbed``.

    Returns ``{module name: fraction}`` plus ``"global"`` (weighted by unit count).

    Example:
        >>> import timm
        >>> from robust_prune.data.loading import first_n, load_data
        >>> model = timm.create_model("test_resnet", num_classes=10).eval()
        >>> x, y = first_n(load_data("digits").test, 8)
        >>> x_adv = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
        >>> 0.0 <= activation_flips(model, x, x_adv)["global"] <= 1.0
        True
    """
    signs: dict[str, list[torch.Tensor]] = {}
    handles = []

    def hook(name: str):  # noqa: ANN202 - a forward pre-hook factory
        def record(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            signs.setdefault(name, []).append((inputs[0] > 0).detach().cpu())

        return record

    for name, module in unwrap_model(model).named_modules():
        if isinstance(module, RELU_LIKE):
            handles.append(module.register_forward_pre_hook(hook(name)))
    try:
        with preserve_state(model), torch.no_grad():
            model(x)
            model(x_perturbed)
    finally:
        for handle in handles:
            handle.remove()
    flips, flipped, units = {}, 0, 0
    for name, calls in signs.items():  # a module called k times per pass recorded k clean, then k perturbed
        half = len(calls) // 2
        changed = sum(int((a != b).sum()) for a, b in zip(calls[:half], calls[half:]))
        count = sum(a.numel() for a in calls[:half])
        flips[name] = changed / max(count, 1)
        flipped, units = flipped + changed, units + count
    flips["global"] = flipped / max(units, 1)
    return flips


@dataclass
class Diagnostics:
    """What :func:`sparsity_diagnostics` measured; JSON round trip and a printable table."""

    sparsity: float
    layer_sparsity: dict[str, float]
    layers: list[LayerNorms]
    lipschitz_bound: float
    eps: float
    norm: str
    output_change: dict[str, float]
    activation_flips: dict[str, float]
    n: int
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def __str__(self) -> str:
        oc, flips = self.output_change, self.activation_flips
        lines = [
            f"Sparsity diagnostics ({self.n} points, {self.norm} eps={self.eps:.4g})",
            f"  global weight sparsity        {self.sparsity:.2%}",
            f"  product-of-norms bound        {self.lipschitz_bound:.4g}",
            f"  logit change, random          {oc['random']:.4g}",
            f"  logit change, adversarial     {oc['adversarial']:.4g}  (x{oc['ratio']:.3g} random)",
            f"  ReLU sign flips (adversarial) {flips.get('global', 0.0):.2%}",
            "",
            f"  {'layer':<40} {'kind':<9} {'zeros':>8} {'frobenius':>10} {'op. norm':>10}",
        ]
        for layer in self.layers:
            lines.append(
                f"  {layer.name:<40} {layer.kind:<9} {layer.sparsity:>8.1%} {layer.frobenius:>10.4g} "
                f"{layer.operator:>10.4g}"
            )
        lines += ["", f"  {'activation':<40} {'sign flips':>10}"]
        lines += [f"  {k:<40} {v:>10.1%}" for k, v in flips.items() if k != "global"]
        return "\n".join(lines)


def sparsity_diagnostics(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "Linf",
    steps: int = 10,
    seed: int = 0,
) -> Diagnostics:
    """Measure sparsity, norms, the Lipschitz bound, output change and activation flips on ``x, y``.

    The model is left exactly as found (RNG, gradients, train/eval flags).

    Example:
        >>> import timm
        >>> from robust_prune.data.loading import first_n, load_data
        >>> model = timm.create_model("test_resnet", num_classes=10).eval()
        >>> x, y = first_n(load_data("digits").test, 8)
        >>> diag = sparsity_diagnostics(model, x, y, eps=0.1, steps=2)
        >>> diag.n, diag.sparsity, sorted(diag.output_change)
        (8, 0.0, ['adversarial', 'random', 'ratio'])
    """
    global_sparsity, per_layer = weight_sparsity(model)
    norms = layer_norms(model)
    x_adv = run_attack(model, x, y, AttackConfig(name="pgd", norm=norm, eps=eps, steps=steps, seed=seed))
    change = output_change(model, x, y, eps=eps, norm=norm, steps=steps, seed=seed, x_adv=x_adv)
    return Diagnostics(
        sparsity=global_sparsity,
        layer_sparsity=per_layer,
        layers=norms,
        lipschitz_bound=lipschitz_product(norms),
        eps=float(eps),
        norm=norm,
        output_change=change,
        activation_flips=activation_flips(model, x, x_adv),
        n=len(y),
        meta={"steps": steps, "seed": seed},
    )


def diagnose(
    model: nn.Module,
    data: Any = None,
    *,
    eps: float | None = None,
    norm: str = "Linf",
    n: int = 256,
    steps: int = 10,
    seed: int = 0,
    batch_size: int = 128,
    data_dir: str | None = None,
    image_size: int | None = None,
) -> Diagnostics:
    """:func:`sparsity_diagnostics` on the first ``n`` test points of ``data`` (a name, bundle or loader), read
    from ``data_dir`` at ``image_size`` (as :func:`robust_prune.evaluate` reads them), on the model's device.

    Example:
        >>> import timm
        >>> model = timm.create_model("test_resnet", num_classes=10)
        >>> print(diagnose(model, "digits", n=16, steps=2))  # doctest: +ELLIPSIS
        Sparsity diagnostics (16 points, Linf eps=0.1)
        ...
    """
    from ..data.loading import first_n
    from .robustness import evaluation_loader

    loader, name, default_eps = evaluation_loader(
        data, model, batch_size=batch_size, data_dir=data_dir, image_size=image_size
    )
    with torch.random.fork_rng(devices=[]):  # a DataLoader draws its base seed from the global RNG
        x, y = first_n(loader, n)
    device = model_device(model)
    eps = default_eps if eps is None else eps
    if eps is None:
        raise ConfigError("A user's data loader carries no attack budget: pass eps= (pixel units).")
    diag = sparsity_diagnostics(model, x.to(device), y.to(device), eps=eps, norm=norm, steps=steps, seed=seed)
    diag.meta["data"] = name
    return diag
