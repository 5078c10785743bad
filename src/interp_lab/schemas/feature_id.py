"""Feature ids, ``L{layer}:{kind}{index}`` (architecture.md): the one place that writes and reads them.

``KINDS`` are the features interp-lab finds and edits itself: ``L12:N1043`` (an MLP neuron), ``L3:R7`` (a
residual dimension), ``L9:D0`` (a learned direction; its vector is saved beside the report), ``L15:F2210`` (an
SAE latent; the SAE goes in provenance). Controls name their random, matched and permuted directions with
longer kinds (``L3:rdir4``, ``L3:mdir<tag>_4``, ``L3:pdir<tag>_4``); ids imported from other tools
(Neuronpedia, 0.2 files) are kept as given, and an SAE whose hook names no layer numbers its latents
``F{index}``. No torch here: every layer may import this module.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from interp_lab.errors import UsageError

KINDS = {"N": "MLP neuron", "R": "residual dimension", "D": "learned direction", "F": "SAE latent"}
# the hook point (below ``blocks.{layer}.``) a feature of each kind reads and writes
HOOK_OF_KIND = {"N": "mlp.hook_post", "R": "hook_resid_post", "D": "hook_resid_post", "F": "hook_resid_post"}

_ID = re.compile(r"^L(\d+):([A-Za-z]+)(\d+)$")
_LAYER = re.compile(r"^L(\d+):")


class FeatureId(NamedTuple):
    layer: int
    kind: str
    index: int


def format_id(layer: int | None, kind: str, index: int | str) -> str:
    """``L{layer}:{kind}{index}``; ``{kind}{index}`` when the layer is unknown."""
    return f"{kind}{index}" if layer is None else f"L{layer}:{kind}{index}"


def parse_id(fid: str) -> FeatureId | None:
    """The layer, kind (letters) and index of an ``L{layer}:{kind}{index}`` id; None for any other id."""
    m = _ID.match(fid)
    return FeatureId(int(m.group(1)), m.group(2), int(m.group(3))) if m else None


def parse_feature_id(fid: str) -> FeatureId:
    """A feature interp-lab can edit (a kind of ``KINDS``), surrounding spaces ignored; ``UsageError``
    otherwise."""
    got = parse_id(fid.strip())
    if got is None or got.kind not in KINDS:
        raise UsageError(f"feature id {fid!r} is not L<layer>:<{'|'.join(KINDS)}><index> (architecture.md)")
    return got


def kind_of(fid: str) -> str | None:
    """The kind of an ``L{layer}:{kind}{index}`` id (``N``, ``rdir`` ...); None for any other id."""
    got = parse_id(fid)
    return got.kind if got else None


def layer_of(fid: str) -> int | None:
    """The layer of any id that starts ``L{layer}:`` (control directions included); None otherwise."""
    m = _LAYER.match(fid)
    return int(m.group(1)) if m else None


def sort_key(fid: str) -> tuple:
    """Natural order for ``L{layer}:{kind}{index}`` ids; other ids after, by text."""
    got = parse_id(fid)
    if got:
        return (0, got.layer, got.kind, got.index, "")
    return (1, 0, "", 0, fid)
