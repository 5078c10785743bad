"""The criterion score of a prompt, measured by the model itself, with or without edits.

- ``NextTokenMass``: probability of the next token being one of the targets.
- ``ContrastLogprob``: log p(positive continuation) - log p(negative continuation).
- ``ContinuationSimilarity``: cosine similarity (MiniLM) between the greedy continuation
  and the criterion text (with its example sentences, if any).

Each scores one cached batch of a ``PromptSet`` under a list of edits and
returns a [B] tensor in the batch's row order (``interventions.batches.scores`` runs one over a whole
prompt set). A criterion defines its scorer (``criteria.compile.scorer_for``); interventions only call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from interp_lab.interventions.batches import CachedBatch, PromptSet
from interp_lab.models.hooked import Edit


@dataclass
class NextTokenMass:
    target_ids: list[int]
    kind: str = "next_token_mass"

    def key(self) -> str:
        return f"{self.kind}:{sorted(self.target_ids)}"

    def __call__(self, ps: PromptSet, batch: CachedBatch, edits: Sequence[Edit]) -> torch.Tensor:
        logits = ps.step(batch, edits).logits[:, -1].float()
        return torch.softmax(logits, -1)[:, torch.as_tensor(self.target_ids)].sum(-1)


@dataclass
class ContrastLogprob:
    """Per prompt_id: the token ids of its positive and of its negative continuation."""

    continuations: dict[str, tuple[list[int], list[int]]]
    kind: str = "logprob_diff"

    def key(self) -> str:
        return f"{self.kind}:{sorted(self.continuations.items())}"

    def __call__(self, ps: PromptSet, batch: CachedBatch, edits: Sequence[Edit]) -> torch.Tensor:
        pairs = [self.continuations[ps.prompt_ids[r]] for r in batch.rows]
        pos = ps.continuation_logprob(batch, [p for p, _ in pairs], edits)
        neg = ps.continuation_logprob(batch, [n for _, n in pairs], edits)
        return pos - neg


@dataclass
class ContinuationSimilarity:
    """MiniLM cosine similarity of the greedy continuation to ``anchor`` (a unit vector)."""

    embedder: object
    anchor: np.ndarray
    n_tokens: int = 16
    kind: str = "similarity"
    last_texts: list[str] = field(default_factory=list)

    def key(self) -> str:
        import hashlib

        return f"{self.kind}:{self.embedder.name}:{self.n_tokens}:" + hashlib.sha256(
            self.anchor.astype(np.float32).tobytes()).hexdigest()

    def __call__(self, ps: PromptSet, batch: CachedBatch, edits: Sequence[Edit]) -> torch.Tensor:
        conts = ps.greedy(batch, self.n_tokens, edits)
        texts = ps.lm.tokenizer.batch_decode(conts, skip_special_tokens=True)
        self.last_texts = texts
        v = self.embedder.embed([t if t.strip() else "." for t in texts])
        return torch.from_numpy(v @ self.anchor.astype(np.float32))


def anchor_vector(embedder, criterion: str, examples: Sequence[str] = ()) -> np.ndarray:
    """The criterion's unit vector: its text and example sentences embedded and averaged."""
    v = embedder.embed([criterion, *examples]).mean(0)
    return v / np.linalg.norm(v)
