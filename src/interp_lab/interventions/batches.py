"""Prompts batched with left padding, their shared prefixes computed once.

Every intervention here edits a prompt from its last token on, so everything
before the last token is the same in the clean and every edited run. Each
batch's prefix (all tokens but the last) runs once and its key/value cache is
kept; a clean or edited run is then a forward over the last token alone (plus
any continuation), and the cache is cut back afterwards. Left padding puts
every prompt's last token in the same column, so a batch moves in lockstep:
one step for next-token scores, a chunk for continuations, a loop of steps for
greedy generation. Position ids follow the attention mask, so a padded prompt
computes exactly what it computes alone (tested).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from interp_lab.models.hooked import Edit, RunResult, cache_arg, run
from interp_lab.models.hooks import family_of, get_module

EditsFor = Callable[["CachedBatch"], Sequence[Edit]]
KEEP_SETS = 8  # prompt sets (with their prefix caches) kept per model by ``PromptSet.shared``


@dataclass
class CachedBatch:
    rows: np.ndarray  # indices of this batch's prompts in the prompt set
    mask: torch.Tensor  # [B, T] attention mask of the prompts (left padded)
    last_ids: torch.Tensor  # [B, 1] each prompt's last token
    next_pos: torch.Tensor  # [B] position id of the last token
    cache: object  # key/value cache of the prefix (empty when every prompt is one token)
    prefix_len: int
    clean_outputs: list | None = None  # each block's clean output for the last token (for replay)

    @property
    def size(self) -> int:
        return len(self.rows)

    def chunk(self, ids: torch.Tensor, chunk_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Model inputs for ``ids`` [B, k] continuing the prefix (mask [B, k], default all ones)."""
        cm = torch.ones_like(ids) if chunk_mask is None else chunk_mask
        prefix_mask = self.mask[:, : self.prefix_len]
        pos = self.next_pos[:, None] + torch.cumsum(cm, 1) - 1
        return {"input_ids": ids, "attention_mask": torch.cat([prefix_mask, cm], 1),
                "position_ids": pos.clamp(min=0)}

    def cut_back(self) -> None:
        """Drop what a step appended to the cache (layers after an early stop appended nothing)."""
        for layer in self.cache.layers:
            extra = layer.get_seq_length() - self.prefix_len if layer.is_initialized else 0
            if extra > 0:
                layer.crop(-extra)


def _constant(output):
    """A stand-in ``forward`` that returns a block's recorded output."""
    return lambda *args, **kwargs: output


class PromptSet:
    """Tokenized prompts in left-padded batches whose prefixes are computed once."""

    replay = True  # replay clean block outputs below the first edited block (single-token steps)

    def __init__(self, lm, texts: Sequence[str], batch_size: int = 32, prompt_ids: Sequence[str] | None = None):
        self.lm = lm
        self.texts = list(texts)
        self.prompt_ids = list(prompt_ids) if prompt_ids is not None else [str(i) for i in range(len(texts))]
        tok = lm.tokenizer
        self.ids = [list(x) for x in tok(self.texts, add_special_tokens=True)["input_ids"]]
        if any(len(x) == 0 for x in self.ids):
            from interp_lab.errors import UsageError

            raise UsageError("a prompt tokenizes to nothing")
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        # sort by length so that batches pad little; results are put back in prompt order
        order = np.argsort([len(x) for x in self.ids], kind="stable")
        self.batches = [self._build(order[i: i + batch_size]) for i in range(0, len(order), batch_size)]

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def shared(cls, lm, texts: Sequence[str], batch_size: int = 64, prompt_ids: Sequence[str] | None = None
               ) -> PromptSet:
        """The same prompt set for the same model, texts and batch size within a process, so that compiling
        a criterion, reading activations and intervening compute each prefix once (the last few are kept)."""
        key = (tuple(texts), batch_size, None if prompt_ids is None else tuple(prompt_ids))
        pool = lm.__dict__.setdefault("_prompt_sets", {})
        if key in pool:
            pool[key] = pool.pop(key)  # most recently used last
        else:
            pool[key] = cls(lm, texts, batch_size, prompt_ids)
            while len(pool) > KEEP_SETS:
                pool.pop(next(iter(pool)))
        return pool[key]

    @torch.inference_mode()
    def _build(self, rows: np.ndarray) -> CachedBatch:
        seqs = [self.ids[r] for r in rows]
        T = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), T), self.pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), T), dtype=torch.long)
        for b, s in enumerate(seqs):
            ids[b, T - len(s):] = torch.tensor(s)
            mask[b, T - len(s):] = 1
        pos = (torch.cumsum(mask, 1) - 1).clamp(min=0)
        from transformers import DynamicCache

        cache = DynamicCache(config=self.lm.model.config)
        if T > 1:
            backbone = get_module(self.lm.model, family_of(self.lm.model).backbone)
            backbone(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=pos[:, :-1],
                     use_cache=True, **{cache_arg(backbone): cache})
        return CachedBatch(rows=rows, mask=mask, last_ids=ids[:, -1:], next_pos=pos[:, -1], cache=cache,
                           prefix_len=T - 1)

    def step(self, batch: CachedBatch, edits: Sequence[Edit] = (), read: Sequence[str] = (),
             ids: torch.Tensor | None = None, chunk_mask: torch.Tensor | None = None,
             logits: bool = True) -> RunResult:
        """Run the last token (or ``ids`` [B, k] starting with it) over the cached prefix.

        For the last token alone with edits and nothing read, the blocks below the first edited one
        compute what the clean run computed, so their clean outputs are replayed instead (see
        ``_replay``): an edit at layer L costs the blocks after L (tested equal to the full run).
        """
        single = ids is None
        ids = batch.last_ids if ids is None else ids
        upto = self._replay_upto(edits) if single and edits and not read and self.replay else -1
        try:
            with self._replay(batch, upto):
                return run(self.lm.model, batch.chunk(ids, chunk_mask), read, edits, logits=logits,
                           cache=batch.cache, flat=True)
        finally:
            batch.cut_back()

    def _replay_upto(self, edits: Sequence[Edit]) -> int:
        """The last block whose output the edits leave as it is in the clean run (-1: none)."""
        from interp_lab.models.hooks import parse

        points = [parse(e.hook, self.lm.model) for e in edits]
        if any(p.layer is None for p in points):
            return -1
        return min(p.layer if p.kind == "resid_post" else p.layer - 1 for p in points)

    @contextlib.contextmanager
    def _replay(self, batch: CachedBatch, upto: int):
        """Blocks ``0..upto`` return their clean last-token outputs instead of computing them."""
        if upto < 0:
            yield
            return
        blocks = get_module(self.lm.model, family_of(self.lm.model).layers)
        outs = self._clean_outputs(batch)
        try:
            for i in range(upto + 1):
                blocks[i].forward = _constant(outs[i])
            yield
        finally:
            for i in range(upto + 1):
                blocks[i].__dict__.pop("forward", None)

    def _clean_outputs(self, batch: CachedBatch) -> list:
        """What each block returns for the batch's last token in the clean run (computed once)."""
        if batch.clean_outputs is None:
            blocks = get_module(self.lm.model, family_of(self.lm.model).layers)
            got: list = [None] * len(blocks)

            def keep(i):
                def hook(module, args, output):
                    got[i] = output
                return hook

            handles = [b.register_forward_hook(keep(i)) for i, b in enumerate(blocks)]
            try:
                run(self.lm.model, batch.chunk(batch.last_ids), logits=False, cache=batch.cache,
                    read=[f"blocks.{len(blocks) - 1}.hook_resid_post"])
            finally:
                for h in handles:
                    h.remove()
                batch.cut_back()
            batch.clean_outputs = got
        return batch.clean_outputs

    def next_token_logprobs(self, edits_for: EditsFor | None = None) -> torch.Tensor:
        """[n, vocab] next-token log-probabilities after each prompt, in prompt order."""
        out = None
        for b in self.batches:
            lp = torch.log_softmax(self.step(b, edits_for(b) if edits_for else ()).logits[:, -1].float(), -1)
            if out is None:
                out = torch.empty(len(self), lp.shape[-1])
            out[torch.as_tensor(b.rows)] = lp
        return out

    def last_token_acts(self, hooks: Sequence[str]) -> dict[str, np.ndarray]:
        """Clean activations at each prompt's last token: {hook: [n, d]} (float32), in prompt order."""
        out: dict[str, np.ndarray] = {}
        for b in self.batches:
            res = self.step(b, read=hooks, logits=False)
            for h in hooks:
                a = res.acts[h][:, -1].float().numpy()
                if h not in out:
                    out[h] = np.empty((len(self), a.shape[1]), dtype=np.float32)
                out[h][b.rows] = a
        return out

    def continuation_logprob(self, batch: CachedBatch, cont: list[list[int]],
                             edits: Sequence[Edit] = ()) -> torch.Tensor:
        """[B] summed log-probability of each row's continuation tokens after its prompt."""
        k = max(len(c) for c in cont)
        ids = torch.full((batch.size, k + 1), self.pad, dtype=torch.long)
        cm = torch.zeros((batch.size, k + 1), dtype=torch.long)
        ids[:, 0], cm[:, 0] = batch.last_ids[:, 0], 1
        for r, c in enumerate(cont):
            ids[r, 1: 1 + len(c)] = torch.tensor(c, dtype=torch.long)
            cm[r, 1: 1 + len(c)] = 1
        lp = torch.log_softmax(self.step(batch, edits, ids=ids, chunk_mask=cm).logits[:, :-1].float(), -1)
        got = lp.gather(-1, ids[:, 1:, None])[..., 0] * cm[:, 1:]
        return got.sum(1)

    def greedy(self, batch: CachedBatch, n_tokens: int, edits: Sequence[Edit] = ()) -> list[list[int]]:
        """Greedy continuations of ``n_tokens`` tokens, the edits applied at every generated step."""
        ids = batch.last_ids
        steps: list[torch.Tensor] = []
        prefix_mask = batch.mask[:, : batch.prefix_len]
        try:
            for t in range(n_tokens):
                inputs = {"input_ids": ids, "position_ids": (batch.next_pos + t)[:, None],
                          "attention_mask": torch.cat([prefix_mask, torch.ones(batch.size, t + 1, dtype=torch.long)], 1)}
                logits = run(self.lm.model, inputs, (), edits, cache=batch.cache, flat=True).logits
                ids = logits[:, -1].argmax(-1, keepdim=True)
                steps.append(ids)
        finally:
            batch.cut_back()
        return torch.cat(steps, 1).tolist() if steps else [[] for _ in range(batch.size)]


def scores(ps: PromptSet, scorer, edits_for=None) -> np.ndarray:
    """[n] scores in prompt order; ``edits_for(batch)`` gives each batch's edits."""
    out = np.zeros(len(ps))
    for b in ps.batches:
        out[b.rows] = scorer(ps, b, edits_for(b) if edits_for else ()).numpy()
    return out
