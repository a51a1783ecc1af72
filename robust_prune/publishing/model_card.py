"""The Hugging Face model card (README.md) of a saved robust_prune model.

The card is built with huggingface_hub's ``ModelCard`` / ``ModelCardData`` / ``EvalResult``: YAML metadata
(library, tags, dataset, license, base model) and a ``model-index`` with one result for clean accuracy and one per
attack, the threat model in each metric's name and config. The model-index is published only when the report's
gradient-masking sanity checks ran and passed; otherwise the card shows the numbers as unverified and says why.
The licence is the one timm's ``pretrained_cfg`` lists for the architecture (``other`` when it lists none); the
base model is named only when it is known (recorded at creation or passed to ``save_pretrained``).
:func:`card_metrics` parses a card back with huggingface_hub, so what the Hub shows can be checked against the
report.

Example:
    >>> import json, robust_prune as rp
    >>> result = rp.robustify("test_resnet", method="dense", epochs=1, objective="clean", eval_n=16, eval_steps=2,
    ...                       progress=False)  # one clean epoch: enough right answers for the sanity checks
    >>> config = json.loads((result.save_pretrained("out/run1") / "config.json").read_text())
    >>> card = build_model_card(config, result.report, repo_id="me/test_resnet-digits")
    >>> card_metrics(str(card)) == report_metrics(result.report)
    True
"""

from __future__ import annotations

import json
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..data.catalog import DATASETS
from ..evaluation.report import AttackResult, RobustnessReport

__all__ = [
    "CITATION",
    "build_model_card",
    "card_metrics",
    "eval_results",
    "metrics_verified",
    "report_metrics",
    "timm_loadable",
]

CITATION = """@article{liao2022achieving,
  title   = {Achieving Adversarial Robustness via Sparsity},
  author  = {Liao, Ningyi and Wang, Shufan and Xiang, Liyao and Ye, Nanyang and Shao, Shuo and Chu, Pengzhi},
  journal = {Machine Learning},
  volume  = {111},
  pages   = {685--711},
  year    = {2022},
  eprint  = {2009.05423},
  archivePrefix = {arXiv}
}"""

CLEAN_METRIC = "clean"


def timm_loadable(config: dict[str, Any]) -> bool:
    """Whether timm's own ``create_model("hf-hub:...")`` can load the folder (no channel was removed)."""
    record = config.get("robust_prune", {}).get("record", {})
    return not record.get("history") and not record.get("module_attrs")


def _hf_origin(config: dict[str, Any]) -> dict[str, Any]:
    """The data spec's ``hf`` entry (Hugging Face data: repo id, config, splits, fingerprints), else {}."""
    data = config.get("robust_prune", {}).get("data") or {}
    return (data.get("hf") or {}) if isinstance(data, dict) else {}


def _dataset(config: dict[str, Any], report: RobustnessReport | None) -> tuple[str, str]:
    hf = _hf_origin(config)
    if hf.get("repo_id"):
        return str(hf["repo_id"]), str(hf["repo_id"]) + (f" ({hf['config']})" if hf.get("config") else "")
    data = config.get("robust_prune", {}).get("data") or {}
    name = data.get("name") if isinstance(data, dict) else None
    name = str(name or (report.meta.get("data") if report is not None else None) or "unknown")
    info = DATASETS.get(name)
    if info is None or info.hub_id is None:
        return name, name
    return info.hub_id, str(info.pretty_name)


def _attack_config(res: AttackResult) -> str:
    return f"{res.name} {res.norm} eps={res.eps:.6g} steps={res.steps} restarts={res.restarts}"


def eval_results(
    report: RobustnessReport, dataset_id: str, dataset_name: str, *, split: str = "test", subset: str | None = None
) -> list[EvalResult]:
    """One ``EvalResult`` for clean accuracy and one per attack (threat model in the metric's name and config);
    ``split`` and ``subset`` name the evaluated split and the dataset's config."""
    common = {"task_type": "image-classification", "dataset_type": dataset_id, "dataset_name": dataset_name,
              "dataset_split": split, "dataset_config": subset}  # fmt: skip
    results = [
        EvalResult(
            **common,
            metric_type="accuracy",
            metric_name="clean accuracy",
            metric_value=float(report.clean_accuracy),
            metric_config=CLEAN_METRIC,
        )
    ]
    for name, res in _bounded(report):
        results.append(
            EvalResult(
                **common,
                metric_type="robust_accuracy",
                metric_name=f"{name} robust accuracy ({res.threat_model()}, {res.steps} steps)",
                metric_value=float(res.accuracy),
                metric_config=_attack_config(res),
            )
        )
    return results


def report_metrics(report: RobustnessReport) -> dict[str, float]:
    """``{metric config: value}`` of a report, in the form :func:`card_metrics` returns."""
    metrics = {CLEAN_METRIC: float(report.clean_accuracy)}
    metrics.update({_attack_config(res): float(res.accuracy) for _, res in _bounded(report)})
    return metrics


def _bounded(report: RobustnessReport) -> list[tuple[str, Any]]:
    """Attacks with an eps budget; CW (unbounded, a success rate) is not a robust accuracy."""
    return [(name, res) for name, res in report.attacks.items() if not res.extra.get("unbounded")]


def card_metrics(card: str | ModelCard) -> dict[str, float]:
    """Parse a card's ``model-index`` back with huggingface_hub: ``{metric config: value}``.

    Example:
        >>> import robust_prune as rp
        >>> result = rp.robustify("test_resnet", method="dense", epochs=1, objective="clean", eval_n=16, eval_steps=2,
        ...                       progress=False)
        >>> sorted(card_metrics((result.save_pretrained("out/run1") / "README.md").read_text()))
        ['clean', 'pgd Linf eps=0.1 steps=2 restarts=1']
    """
    parsed = card if isinstance(card, ModelCard) else ModelCard(card)
    return {str(r.metric_config): float(r.metric_value) for r in parsed.data.eval_results or []}


def _load_section(repo: str, timm_ok: bool, cfg: dict[str, Any]) -> list[str]:
    lines = [
        "## How to load",
        "",
        "With robust_prune (normalisation inside the model, eval mode, inputs are images in [0, 1]):",
        "",
        "```python",
        "import torch",
        "import robust_prune as rp",
        "",
        f'model = rp.from_pretrained("{repo}")',
        f"logits = model(torch.rand(1, {', '.join(str(s) for s in cfg.get('input_size', [3, 32, 32]))}))",
        "print(model.report)",
        "```",
        "",
    ]
    if timm_ok:
        lines += [
            "No channel was removed, so plain timm loads it too, with the same logits. timm's model expects "
            "normalised inputs: apply the mean/std of its `pretrained_cfg` (what robust_prune does inside the "
            "model; `timm.data.resolve_data_config` / `create_transform` build the same transform).",
            "",
            "```python",
            "import timm",
            "import torch",
            "",
            f'model = timm.create_model("hf-hub:{repo}", pretrained=True).eval()',
            'mean = torch.tensor(model.pretrained_cfg["mean"]).view(1, -1, 1, 1)',
            'std = torch.tensor(model.pretrained_cfg["std"]).view(1, -1, 1, 1)',
            f"pixels = torch.rand(1, {', '.join(str(s) for s in cfg.get('input_size', [3, 32, 32]))})  # in [0, 1]",
            "logits = model((pixels - mean) / std)  # = rp.from_pretrained(...)(pixels)",
            "```",
        ]
    else:
        lines += [
            "**This model needs robust_prune** (`pip install robust-prune`). Channels were removed (structured "
            "pruning), so plain `timm.create_model(\"hf-hub:...\", pretrained=True)` fails with a size-mismatch "
            "error: config.json names the full-width timm architecture. robust_prune rebuilds the pruned "
            "architecture from the timm name and the pruning record stored in config.json, then loads the weights "
            "with `strict=True`.",
        ]
    return lines + [""]


def _data_line(hf: dict[str, Any]) -> str:
    """Which Hugging Face data it was trained and evaluated on, down to the splits' fingerprints ("" for other data)."""
    if not hf:
        return ""
    where = f"the Hub dataset `{hf['repo_id']}`" if hf.get("repo_id") else "a `datasets.DatasetDict` built locally"
    config = f", config `{hf['config']}`" if hf.get("config") else ""
    splits, prints = hf.get("splits", {}), hf.get("fingerprints", {})
    parts = [f"{role} split `{splits.get(role)}` (fingerprint `{prints.get(role)}`)" for role in ("train", "test")]
    return f"Data: {where}{config}; {', '.join(parts)}."


def metrics_verified(report: RobustnessReport) -> bool:
    """Whether a report's numbers may go into a card's model-index: its sanity checks ran and all passed."""
    return bool(report.sanity) and report.sanity_passed


def _provenance(base_model: str | None, license_: str | None) -> str:
    base = (
        f"Started from the weights `{base_model}`."
        if base_model
        else "Base weights: not recorded (timm's initialisation unless the publisher says otherwise)."
    )
    terms = (
        f"Licence: `{license_}`, the licence timm lists for this architecture's published weights."
        if license_
        else "Licence: unknown (timm lists none for this architecture), marked `other` in the metadata."
    )
    return f"{base} {terms}"


def _data_section(config: dict[str, Any], dataset_name: str) -> list[str]:
    """The training data in one section: its name, resolution and sizes, the Hugging Face origin (repo, config,
    splits' fingerprints) and each file read with its sha256, where recorded."""
    data = config.get("robust_prune", {}).get("data") or {}
    if not isinstance(data, dict) or not data:
        return []
    lines = ["## Training data", ""]
    sizes = f"{data.get('train_size')} training / {data.get('test_size')} test images"
    lines.append(f"{dataset_name}, {data.get('image_size')} px, {data.get('channels')} channel(s), {sizes}.")
    origin = _data_line(_hf_origin(config))
    lines += ["", origin] if origin else []
    files = data.get("files") or []
    if files:
        lines += ["", "Files read (sha256):", ""]
        lines += [f"- `{f.get('name')}`: `{f.get('sha256')}`" for f in files if isinstance(f, dict)]
    return [*lines, ""]


def build_model_card(
    config: dict[str, Any], report: RobustnessReport | None, *, repo_id: str | None = None
) -> ModelCard:
    """A model card: YAML metadata, model-index, how to load it, the report, sanity checks, method and citation.

    Args:
        config: the folder's config.json content (timm fields plus the ``robust_prune`` section).
        report: the robustness report (no model-index without one).
        repo_id: the Hub repository the card is for (used in the loading code); a placeholder when None.

    Example:
        >>> config = {"architecture": "test_resnet", "num_classes": 10, "robust_prune": {"method": "dense"}}
        >>> card = build_model_card(config, None, repo_id="me/test_resnet-digits")
        >>> card.data.library_name, card.data.eval_results  # no report: no model-index
        ('robust_prune', None)
    """
    section = config.get("robust_prune", {})
    record = section.get("record", {})
    arch = str(config.get("architecture"))
    method, structure = section.get("method", "dense"), section.get("structure", "none")
    dataset_id, dataset_name = _dataset(config, report)
    hf = _hf_origin(config)
    timm_ok = timm_loadable(config)
    repo = repo_id or "REPO_ID"
    tags = ["robust_prune", "adversarial-robustness", "pruning", "image-classification", f"method-{method}"]
    tags += ["timm"] if timm_ok else []
    base_model = section.get("base_model") or record.get("extra", {}).get("base_model")
    license_ = config.get("pretrained_cfg", {}).get("license")
    verified = report is not None and metrics_verified(report)
    data = ModelCardData(
        library_name="robust_prune",
        license=license_ or "other",
        tags=tags,
        datasets=[dataset_id] if "/" in dataset_id else None,
        base_model=base_model,
        pipeline_tag="image-classification",
        model_name=repo_id or f"{arch}-{dataset_id.split('/')[-1]}-{method}",
        eval_results=eval_results(report, dataset_id, dataset_name, split=hf.get("splits", {}).get("test", "test"),
                                  subset=hf.get("config")) if verified else None,
    )  # fmt: skip
    stats = record.get("stats", {})
    pruned = f", {structure}-level pruning to {float(section.get('sparsity', 0.0)):.0%}" if structure != "none" else ""
    body = [
        f"# {arch} on {dataset_name}: adversarially robust ({method}{pruned})",
        "",
        f"A timm `{arch}` made adversarially robust with robust_prune: method `{method}`, structure `{structure}`.",
        "",
        _provenance(base_model, license_),
        "",
        *_load_section(repo, timm_ok, config.get("pretrained_cfg", {})),
    ]
    if report is not None:
        title = "## Robustness report" if verified else "## Robustness report (unverified)"
        body += [title, ""]
        if not verified:
            why = "failed" if report.sanity else "were not run"
            body += [
                f"The gradient-masking sanity checks {why}, so these accuracies are not published as model-index "
                "results: treat them as unverified until an evaluation passes the checks.",
                "",
            ]
        body += [report.to_markdown(), "", "## Sanity checks", ""]
        if report.sanity:
            for check in report.sanity:
                mark = "passed" if check.get("passed", False) else "**FAILED**"
                body.append(f"- {check.get('name')}: {mark}. {check.get('detail', '')}".rstrip())
            if not report.sanity_passed:
                body += ["", "**Gradient-masking checks failed: treat the robust accuracies above with suspicion.**"]
        else:
            body.append("The gradient-masking sanity checks were not run for this report.")
        body += [
            "",
            "## Size and sparsity",
            "",
            f"- parameters: {report.params:,}",
            f"- MACs per image: {report.macs:,}",
            f"- weight sparsity (zero weights in conv/linear layers): {report.sparsity:.2%}",
        ]
        if report.channel_ratio is not None:
            body.append(f"- channel-width ratio: {report.channel_ratio:.3f}")
        body.append("")
    if stats:
        body += ["Pruning statistics: `" + json.dumps(stats, sort_keys=True) + "`", ""]
    body += _data_section(config, dataset_name)
    body += [
        "## Method",
        "",
        _method_text(method),
        "Training, attack and data settings are stored in `config.json` (section `robust_prune`).",
        "",
        "## Citation",
        "",
        'Liao, Wang, Xiang, Ye et al., "Achieving Adversarial Robustness via Sparsity", Machine Learning 2022, '
        "[arXiv:2009.05423](https://arxiv.org/abs/2009.05423).",
        "",
        "```bibtex",
        CITATION,
        "```",
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")


def _method_text(method: str) -> str:
    """What the method's registration says it did (a method this version does not know: its name)."""
    from ..methods import get_method, list_methods

    return get_method(method).card if method in list_methods() else f"Method `{method}`."
