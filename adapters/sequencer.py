"""timm.models.sequencer: Sequencer: bidirectional LSTMs along the rows and columns of the feature map.

Its token mixers (LSTM2d) run LSTMs whose hidden width is tied to the input width: they are opaque and keep their
widths, and only its MLP hidden widths (timm's MLPs) are pruned (``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.sequencer import LSTM2d

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class SequencerAdapter(HiddenWidthAdapter):
    name = "sequencer"
    timm_modules = ("sequencer",)
    hidden = {}
    opaque = (LSTM2d,)
    examples = (
        Example("sequencer2d_s", "sequencer", {"layers": [1, 1, 1, 1]}),
        Example("sequencer2d_m", "sequencer", quick=False),
    )
