"""Untrusted repositories are refused before any weight is read: a config.json that names an hf-hub: architecture,
carries a loading argument such as checkpoint_path, or sets an undeclared module attribute raises
UntrustedConfigError naming the key, as a folder and on the Hub, and no weight file is opened or downloaded."""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import timm
import torch
from hub_server import HubServer

import robust_prune as rp
import robust_prune.publishing.hub as hub
from robust_prune.api import RobustifyResult
from robust_prune.errors import CheckpointError, PruningError, UntrustedConfigError
from robust_prune.publishing.trust import LOADING_KEYS, check_model_args, constructor_keys

torch.set_num_threads(1)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit of config.json: set the entry at a dotted path."""

    def edit(config: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return edit


# (name, edit of a channel-pruned test_resnet's config.json, the key the error must name)
CRAFTED = [
    ("hf-hub architecture", _set("robust_prune.record.architecture", "hf-hub:someone/other"), "architecture"),
    ("local-dir architecture", _set("robust_prune.record.architecture", "local-dir:/tmp/x"), "architecture"),
    ("tagged architecture", _set("robust_prune.record.architecture", "test_resnet.r160_in1k"), "architecture"),
    ("unregistered architecture", _set("robust_prune.record.architecture", "resnet9000"), "architecture"),
    ("checkpoint_path", _set("robust_prune.record.model_args.checkpoint_path", "model.safetensors"),
     "record.model_args.checkpoint_path"),
    ("pretrained_cfg_overlay", _set("robust_prune.record.model_args.pretrained_cfg_overlay",
                                    {"file": "/etc/passwd"}), "record.model_args.pretrained_cfg_overlay"),
    ("pretrained", _set("robust_prune.record.model_args.pretrained", True), "record.model_args.pretrained"),
    ("not a constructor argument", _set("robust_prune.record.model_args.evil", 1), "record.model_args.evil"),
    ("nested value", _set("robust_prune.record.model_args.drop_rate", {"x": 1}), "record.model_args.drop_rate"),
    ("undeclared attribute", _set("robust_prune.record.module_attrs", {"fc": {"forward": 0}}),
     "record.module_attrs.fc.forward"),
    ("another family's attribute", _set("robust_prune.record.module_attrs", {"layer1.0": {"num_heads": 2}}),
     "record.module_attrs.layer1.0.num_heads"),
    ("non-numeric attribute", _set("robust_prune.record.module_attrs", {"layer1.0.bn1": {"groups": "2"}}),
     "record.module_attrs.layer1.0.bn1.groups"),
    ("unknown adapter", _set("robust_prune.record.adapter", "my_adapter"), "record.adapter"),
    ("huge input", _set("robust_prune.record.input_size", [3, 100000, 100000]), "record.input_size"),
    ("bad history", _set("robust_prune.record.history", [["conv1", "yes", [0]]]), "record.history[0]"),
    ("zero std", _set("pretrained_cfg.std", [0.0, 0.0, 0.0]), "pretrained_cfg.std"),
]  # fmt: skip


@pytest.fixture
def no_weight_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail the test if a tensor file is opened (safetensors) or anything is unpickled; returns the attempts."""
    attempts: list[str] = []

    def forbidden(*args: Any, **kwargs: Any) -> None:
        attempts.append(str(args[:1]))
        raise AssertionError(f"a weight file was opened: {args[:1]}")

    for target, name in ((hub, "load_file"), (safetensors.torch, "load_file"), (torch, "load"), (pickle, "load")):
        monkeypatch.setattr(target, name, forbidden)
    return attempts


def _crafted(source: Path, folder: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def saved_channel(tmp_path_factory: pytest.TempPathFactory, kinds: dict[str, RobustifyResult]) -> Path:
    return kinds["channel"].save_pretrained(tmp_path_factory.mktemp("channel") / "m")


@pytest.mark.parametrize("name, edit, key", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_folders_are_refused_before_any_weight_is_read(
    saved_channel: Path, tmp_path: Path, no_weight_reads: list[str], name: str, edit: Callable, key: str
) -> None:
    folder = _crafted(saved_channel, tmp_path / "crafted", edit)
    with pytest.raises(UntrustedConfigError) as err:
        rp.from_pretrained(folder)
    assert err.value.key == key and key in str(err.value)
    assert no_weight_reads == []


ON_THE_HUB = [c for c in CRAFTED if c[2] in ("architecture", "record.model_args.checkpoint_path",
                                              "record.module_attrs.fc.forward")]  # fmt: skip


@pytest.mark.parametrize("name, edit, key", ON_THE_HUB, ids=[c[0] for c in ON_THE_HUB])
def test_crafted_repositories_are_refused_before_any_weight_is_downloaded(
    hub_server: HubServer, saved_channel: Path, tmp_path: Path, no_weight_reads: list[str], name: str,
    edit: Callable, key: str,
) -> None:  # fmt: skip
    folder = _crafted(saved_channel, tmp_path / "crafted", edit)
    hub_server.add_repo("test-user/crafted", {p.name: p.read_bytes() for p in folder.iterdir()})
    with pytest.raises(UntrustedConfigError, match="test-user/crafted/config.json") as err:
        rp.from_pretrained("test-user/crafted")
    assert err.value.key == key
    fetched = [path for method, path in hub_server.requests if "/resolve/" in path]
    assert fetched and all(path.endswith("/config.json") for path in fetched), fetched
    assert not any("someone" in path for _, path in hub_server.requests)  # the other repository is never asked
    assert no_weight_reads == []


def test_a_submodule_the_model_does_not_have_is_refused(saved_channel: Path, tmp_path: Path) -> None:
    folder = _crafted(saved_channel, tmp_path / "crafted", _set("robust_prune.record.module_attrs",
                                                                {"nowhere.0": {"groups": 2}}))  # fmt: skip
    with pytest.raises(PruningError, match="'nowhere.0', which this model does not have"):
        rp.from_pretrained(folder)
    folder = _crafted(saved_channel, tmp_path / "crafted2", _set("robust_prune.record.module_attrs",
                                                                 {"layer1.0": {"groups": 2}}))  # fmt: skip
    with pytest.raises(PruningError, match="layer1.0.groups, an attribute"):
        rp.from_pretrained(folder)


def test_attention_attributes_are_declared_and_load(tmp_path: Path) -> None:
    """A head-dim pruned ViT records num_heads/head_dim/scale/fused_attn: declared by its adapter, so it loads."""
    model = rp.models.NormalizedModel.from_timm(rp.models.create_model("test_vit", num_classes=10, img_size=32))
    model.eval()
    model.record = rp.prune(model, 0.5).record
    attrs = {a for values in model.record.module_attrs.values() for a in values}
    assert {"num_heads", "head_dim", "scale", "fused_attn"} <= attrs
    again = rp.from_pretrained(rp.save_pretrained(model, tmp_path / "vit"))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))


def test_adapters_must_declare_what_after_prune_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    from robust_prune.adapter_api import get_adapter

    model = timm.create_model("test_resnet", num_classes=10)
    adapter = type(get_adapter(model))
    monkeypatch.setattr(adapter, "after_prune", lambda self, m, heads: {"fc": {"in_features": 3}})
    with pytest.raises(PruningError, match=r"\['in_features'\].*recorded_attrs"):
        rp.prune(model, 0.5)


def test_model_args_checks() -> None:
    keys, open_ended = constructor_keys("test_vit")
    assert {"img_size", "embed_dim", "num_heads"} <= keys and not open_ended
    check_model_args("test_vit", {"img_size": 32, "num_classes": 10, "drop_path_rate": 0.1, "global_pool": "avg"})
    assert constructor_keys("test_byobnet")[1]  # byobnet overlays **kwargs on its config: open-ended ...
    for key in sorted(LOADING_KEYS):  # ... yet loading keys are refused there too
        with pytest.raises(UntrustedConfigError, match=key):
            check_model_args("test_byobnet", {key: None})


def test_creation_args_keep_no_loading_keys(tmp_path: Path) -> None:
    """A model created with a loading argument is saved without it, so its folder loads."""
    src = timm.create_model("test_resnet", num_classes=10)
    torch.save(src.state_dict(), tmp_path / "init.pth")
    model = rp.models.create_model("test_resnet", num_classes=10, checkpoint_path=str(tmp_path / "init.pth"))
    assert rp.adapters.creation_args(model) == {"num_classes": 10}
    again = rp.from_pretrained(rp.save_pretrained(model.eval(), tmp_path / "m"))
    assert "checkpoint_path" not in again.record.model_args


def test_untrusted_config_error_is_a_checkpoint_error() -> None:
    err = UntrustedConfigError("architecture", "is bad")
    assert isinstance(err, CheckpointError) and isinstance(err, rp.errors.RobustPruneError)
