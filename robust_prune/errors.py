"""Every exception a user of robust_prune can see.

Each error names the problem and says what to do next, like huggingface_hub's errors module. All of
them derive from :class:`RobustPruneError`, so ``except RobustPruneError`` catches everything the
library raises on purpose. Errors about bad values also derive from :class:`ValueError` so that
generic code keeps working.
"""

from __future__ import annotations

__all__ = [
    "RobustPruneError",
    "ConfigError",
    "DatasetError",
    "DatasetNotFoundError",
    "CorruptDatasetError",
    "NonFiniteImagesError",
    "ModelAdaptationError",
    "UnsupportedArchitectureError",
    "PruningError",
    "FamilyPruningError",
    "TrainingDivergedError",
    "CheckpointError",
    "RunDirectoryMismatchError",
    "RunDirectoryExistsError",
    "NotARobustPruneFolderError",
    "UntrustedConfigError",
    "HubError",
    "MissingDependencyError",
]


class RobustPruneError(Exception):
    """Base class of every error robust_prune raises on purpose."""


class ConfigError(RobustPruneError, ValueError):
    """An option has a value robust_prune cannot work with (negative eps, sparsity 1.0, unknown name)."""


class DatasetError(RobustPruneError, ValueError):
    """The data cannot be used: unknown name, empty, wrong image shape, or too few classes."""


class NonFiniteImagesError(DatasetError):
    """The images hold NaN or infinite pixels."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset directory or file is missing."""


class CorruptDatasetError(DatasetError):
    """A dataset file is damaged: a truncated gzip, a wrong magic number, sizes that do not match its bytes, or
    image and label counts that differ. The message names the file and how to get a good copy."""


class ModelAdaptationError(RobustPruneError, ValueError):
    """The model cannot be fitted to the data (classes, channels, input size) or is not a usable module."""


class UnsupportedArchitectureError(RobustPruneError):
    """A timm family that robust_prune cannot prune; raised before any weight is touched."""

    def __init__(self, family: str, layer: str, reason: str) -> None:
        self.family, self.layer, self.reason = family, layer, reason
        super().__init__(
            f"Cannot prune the timm family '{family}' at layer '{layer}': {reason}. "
            "Pick a supported family (robust_prune.list_adapters()) or use structure='weight', "
            "which works on any model."
        )


class PruningError(RobustPruneError):
    """Pruning produced a broken model or a record that cannot be replayed."""


class FamilyPruningError(PruningError):
    """Pruning (or growing) a model of one timm family failed inside the machinery robust_prune builds on (the
    dependency graph would not trace in time, a layer it does not know, a pruned graph that no longer runs). The
    caller's model is left exactly as it was.

    Attributes:
        family: the timm module (``"tiny_vit"``) or class name of the model.
        step: what failed (``"trace the dependency graph"``, ``"prune the channels"``, ...).
        detail: the underlying failure, e.g. ``"IndexError: index 320 is out of bounds"``.
    """

    def __init__(self, family: str, step: str, detail: str, *, structure: str = "channel", hints: str = "") -> None:
        self.family, self.step, self.detail, self.structure = family, step, detail, structure
        weight = "Use structure='weight' (masks single weights, works on any model). "
        fallback = weight if structure != "weight" else ""
        super().__init__(
            f"Could not {step} for the timm family '{family}': {detail}.{(' ' + hints) if hints else ''} "
            f"The model was left unchanged. {fallback}To prune this family's {structure}s, write an adapter for it "
            "(a robust_prune.adapter_api.Adapter subclass; README: Writing an adapter) or open an issue on "
            "robust_prune's tracker with this message."
        )


class TrainingDivergedError(RobustPruneError, FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class CheckpointError(RobustPruneError):
    """A checkpoint is corrupt, truncated or was written by something else."""


class RunDirectoryMismatchError(CheckpointError):
    """Resuming into a run directory that was started with a different configuration."""


class RunDirectoryExistsError(CheckpointError, FileExistsError):
    """A fresh start in a run directory that already holds checkpoints (nothing is deleted without being asked)."""


class NotARobustPruneFolderError(RobustPruneError, FileNotFoundError):
    """A folder or Hub repository that does not hold a robust_prune model."""


class HubError(RobustPruneError):
    """Talking to the Hugging Face Hub failed (bad repo id, no token, missing repository, network)."""


class UntrustedConfigError(CheckpointError):
    """A saved model's config.json asks for something robust_prune never writes (a file, URL or Hub reference, a
    constructor argument or module attribute outside what the architecture declares); raised before any weight is
    read.

    Attributes:
        key: the offending entry, e.g. ``"model_args.checkpoint_path"`` or ``"architecture"``.
    """

    def __init__(self, key: str, reason: str, *, source: str = "config.json") -> None:
        self.key, self.reason = key, reason
        super().__init__(
            f"Refusing to load {source}: {key} {reason}. robust_prune never writes this, so the file was edited or "
            "comes from elsewhere; nothing was loaded from it. Load models only from folders and repositories you "
            "trust, or save the model again with robust_prune."
        )


class MissingDependencyError(RobustPruneError, ImportError):
    """An optional feature needs packages that are not installed; the message names the extra that brings them.

    Attributes:
        packages: the missing import names, e.g. ``["onnx", "onnxruntime"]``.
        extra: the ``robust-prune[...]`` extra that installs them.
    """

    def __init__(self, packages: list[str], *, extra: str) -> None:
        self.packages, self.extra = list(packages), extra
        super().__init__(
            f"This needs {', '.join(packages)}, which {'is' if len(packages) == 1 else 'are'} not installed. "
            f'Install the {extra!r} extra: pip install "robust-prune[{extra}]".'
        )
