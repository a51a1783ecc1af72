"""Weight masks: the one place that puts ``{parameter name: bool mask}`` in force on a model and folds them out.

Masks are ``torch.nn.utils.prune`` reparametrisations (``weight = weight_orig * weight_mask``), so they stay in
force through training. Names are relative to the timm model (``"layer1.0.conv1.weight"``); wrappers such as
:class:`~robust_prune.models.NormalizedModel` are looked through.

Example:
    >>> import timm, torch
    >>> m = timm.create_model("test_resnet", num_classes=10)
    >>> apply_masks(m, {"fc.weight": torch.zeros_like(m.fc.weight, dtype=torch.bool)})
    >>> state, masks = folded_state(m.state_dict())
    >>> float(state["fc.weight"].abs().sum()), sorted(masks)
    (0.0, ['fc.weight'])
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from robust_prune.adapter_api import unwrap_model

from ..errors import PruningError

__all__ = ["apply_masks", "current_masks", "folded_state", "make_permanent"]


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Put ``{parameter name: bool mask}`` in force on the timm model inside ``model`` (in place).

    Modules that already carry a mask get theirs replaced; others are masked with
    ``torch.nn.utils.prune.custom_from_mask``.

    Raises:
        PruningError: a mask names a parameter the model does not have.
    """
    inner = unwrap_model(model)
    for pname, mask in masks.items():
        module_name, _, attr = pname.rpartition(".")
        try:
            module = inner.get_submodule(module_name)
            current = getattr(module, f"{attr}_orig" if hasattr(module, f"{attr}_mask") else attr)
        except AttributeError:
            raise PruningError(f"The masks name {pname!r}, which this model does not have.") from None
        mask = mask.to(device=current.device, dtype=torch.float32)
        if hasattr(module, f"{attr}_mask"):
            getattr(module, f"{attr}_mask").copy_(mask)
            with torch.no_grad():  # keep the current weight attribute in step with the new mask
                setattr(module, attr, getattr(module, f"{attr}_orig") * getattr(module, f"{attr}_mask"))
        else:
            torch_prune.custom_from_mask(module, attr, mask)


def current_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The masks now in force, ``{parameter name: bool tensor on the CPU}``."""
    inner = unwrap_model(model)
    return {
        f"{name}.weight" if name else "weight": module.weight_mask.detach().bool().cpu().clone()
        for name, module in inner.named_modules()
        if hasattr(module, "weight_mask")
    }


def make_permanent(model: nn.Module) -> dict[str, torch.Tensor]:
    """Fold the masks into the weights (``prune.remove``) and return them; the model is a plain timm module again.

    Example:
        >>> import timm, robust_prune as rp
        >>> model, record = rp.prune(timm.create_model("test_resnet", num_classes=10), 0.5, structure="weight")
        >>> masks = make_permanent(model)
        >>> all(float(model.get_parameter(n)[~m].abs().sum()) == 0 for n, m in masks.items()), current_masks(model)
        (True, {})
    """
    masks = current_masks(model)
    inner = unwrap_model(model)
    for pname in masks:
        module_name, _, attr = pname.rpartition(".")
        torch_prune.remove(inner.get_submodule(module_name), attr)
    return masks


def folded_state(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A state dict with masked parameters folded (``w_orig * w_mask`` -> ``w``), and the masks it held.

    The model the state came from is not changed (unlike :func:`make_permanent`).
    """
    folded = dict(state)
    masks: dict[str, torch.Tensor] = {}
    for key in [k for k in folded if k.endswith("_orig")]:
        base = key[: -len("_orig")]
        if base + "_mask" in folded:
            mask = folded.pop(base + "_mask")
            folded[base] = folded.pop(key) * mask
            masks[base] = mask.detach().bool().cpu()
    return folded, masks
