"""Property-based tests (hypothesis) of config validation and the JSON round trip."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robust_prune.config import (
    ATTACK_NAMES,
    OBJECTIVES,
    STRUCTURES,
    AttackConfig,
    PruneConfig,
    RobustifyConfig,
    TrainConfig,
)
from robust_prune.errors import ConfigError, RobustPruneError
from robust_prune.methods import list_methods
from robust_prune.pruning.importance import list_importances

METHODS = tuple(list_methods())

SETTINGS = settings(max_examples=40, deadline=None)
finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
valid_eps = st.floats(min_value=0.0, max_value=1.0, allow_nan=False, width=32)
valid_sparsity = st.floats(min_value=0.0, max_value=1.0, exclude_max=True, allow_nan=False, width=32)


def _unknown(allowed: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.text(max_size=12).filter(lambda s: s not in allowed)


@SETTINGS
@given(eps=st.floats(max_value=0.0, exclude_max=True, allow_nan=False, allow_infinity=False))
def test_negative_eps_is_rejected(eps: float) -> None:
    with pytest.raises(ConfigError, match="eps must be >= 0"):
        AttackConfig(eps=eps)


@SETTINGS
@given(eps=st.sampled_from([math.nan, math.inf, -math.inf]))
def test_non_finite_eps_is_rejected(eps: float) -> None:
    with pytest.raises(ConfigError, match="finite"):
        AttackConfig(eps=eps)


@SETTINGS
@given(steps=st.integers(max_value=0))
def test_steps_below_one_are_rejected(steps: int) -> None:
    with pytest.raises(ConfigError, match="steps must be a positive integer"):
        AttackConfig(steps=steps)


@SETTINGS
@given(sparsity=st.one_of(st.floats(min_value=1.0), st.floats(max_value=0.0, exclude_max=True), st.just(math.nan)))
def test_sparsity_outside_unit_interval_is_rejected(sparsity: float) -> None:
    with pytest.raises(ConfigError):
        PruneConfig(sparsity=sparsity)


@SETTINGS
@given(sparsity=valid_sparsity, rounds=st.integers(min_value=1, max_value=8))
def test_rounds_of_the_per_round_keep_reach_the_sparsity(sparsity: float, rounds: int) -> None:
    keep = PruneConfig(sparsity=sparsity, structure="weight", rounds=rounds).per_round_keep()
    assert 0.0 < keep <= 1.0
    assert keep**rounds == pytest.approx(1.0 - sparsity, rel=1e-9)  # what is left after the last round


@SETTINGS
@given(method=_unknown(METHODS), structure=_unknown(STRUCTURES), attack=_unknown(ATTACK_NAMES))
def test_unknown_names_are_rejected_with_the_choices(method: str, structure: str, attack: str) -> None:
    with pytest.raises(ConfigError, match="Choose one of"):
        RobustifyConfig(method=method)
    with pytest.raises(ConfigError, match="Choose one of"):
        PruneConfig(structure=structure)
    with pytest.raises(ConfigError, match="Choose one of"):
        AttackConfig(name=attack)
    with pytest.raises(ConfigError, match="Choose one of"):
        RobustifyConfig(eval_attacks=("pgd", attack))


@SETTINGS
@given(
    epochs=st.integers(max_value=-1),
    lr=st.floats(max_value=0.0, exclude_max=True, allow_nan=False, allow_infinity=False),
)
def test_bad_training_numbers_are_rejected(epochs: int, lr: float) -> None:
    with pytest.raises(ConfigError):
        TrainConfig(epochs=epochs)
    with pytest.raises(ConfigError):
        TrainConfig(lr=lr)


attack_configs = st.builds(
    AttackConfig,
    name=st.sampled_from(ATTACK_NAMES),
    norm=st.sampled_from(("Linf", "L2")),
    eps=st.one_of(st.none(), valid_eps),
    steps=st.integers(1, 100),
    restarts=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
)
train_configs = st.builds(
    TrainConfig,
    epochs=st.integers(0, 50),
    objective=st.sampled_from(OBJECTIVES),
    attack=attack_configs,
    lr=st.floats(min_value=1e-6, max_value=1.0, allow_nan=False),
    schedule=st.sampled_from(("cosine", "constant")),
    mixed_precision=st.sampled_from(("no", "bf16")),
    channels_last=st.booleans(),
    checkpoint_every=st.integers(1, 10),
)
robustify_configs = st.builds(
    RobustifyConfig,
    method=st.sampled_from(METHODS),
    seed=st.integers(0, 2**31 - 1),
    pretrain=train_configs,
    finetune=train_configs,
    prune=st.sampled_from([(s, name) for s in STRUCTURES for name in list_importances(s)])  # what scores s
    .flatmap(
        lambda pair: st.builds(
            PruneConfig, sparsity=valid_sparsity, structure=st.just(pair[0]), importance=st.just(pair[1]),
            rounds=st.integers(1, 8),
        )  # fmt: skip
    ),
    eval_attacks=st.lists(st.sampled_from(ATTACK_NAMES), max_size=3, unique=True).map(tuple),
    eval_eps=st.one_of(st.none(), valid_eps),
    eval_n=st.one_of(st.none(), st.integers(1, 10_000)),
)


@SETTINGS
@given(config=robustify_configs)
def test_valid_configs_round_trip_through_json(config: RobustifyConfig) -> None:
    again = RobustifyConfig.from_json(config.to_json())
    assert again == config
    assert again.total_epochs() == config.total_epochs() >= 0


@SETTINGS
@given(text=st.text(max_size=40))
def test_arbitrary_text_is_a_config_error_or_a_config(text: str) -> None:
    try:
        RobustifyConfig.from_json(text)
    except RobustPruneError as exc:
        assert isinstance(exc, ConfigError) and isinstance(exc, ValueError)
    except TypeError as exc:  # pragma: no cover - must not happen: every bad input is a typed ConfigError
        raise AssertionError(f"untyped error for {text!r}: {exc}") from exc
