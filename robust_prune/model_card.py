"""The Hugging Face model card (README.md) of a saved robust_prune model."""

from __future__ import annotations

from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from .evaluation import RobustnessReport

__all__ = ["build_model_card"]


def build_model_card(config: dict[str, Any], report: RobustnessReport | None) -> ModelCard:
    """A model card with YAML metadata and the report table."""
    section = config.get("robust_prune", {})
    data = ModelCardData(
        library_name="robust_prune",
        tags=["robust_prune", "adversarial-robustness", "pruning", "timm", "image-classification"],
        license="apache-2.0",
    )
    body = [
        f"# {config.get('architecture')} ({section.get('method', 'dense')}, {section.get('structure')})",
        "",
        "```python",
        "import robust_prune as rp",
        'model = rp.from_pretrained("THIS_REPO")',
        "```",
    ]
    if report is not None:
        body += ["", "## Robustness report", "", report.to_markdown()]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")
