"""Writes the sparsify checkpoints the tests load, with sparsify's own encode/decode of fixed inputs.

Run with EleutherAI sparsify installed (``pip install torch==2.13.0 eai-sparsify==1.3.3``):
    python tests/data/sparsify/make_fixture.py
The files are committed, so the tests need no sparsify; rerunning gives the same bytes for a seed.
"""

from pathlib import Path

import torch
from safetensors.torch import save_file
from sparsify import SparseCoder, SparseCoderConfig

HERE = Path(__file__).parent
torch.manual_seed(0)
x = torch.randn(64, 16)
expected = {"x": x}
for name, transcode in (("sae", False), ("transcoder", True)):
    coder = SparseCoder(16, SparseCoderConfig(num_latents=48, k=5, transcode=transcode))
    with torch.no_grad():  # away from the zero initial biases / decoder, so every tensor matters
        coder.encoder.bias.normal_(0, 0.1)
        coder.b_dec.normal_(0, 0.5)
        coder.W_dec.normal_()
        coder.set_decoder_norm_to_unit_norm()
    coder.save_to_disk(HERE / name)
    with torch.no_grad():
        enc = coder.encode(x)
        dense = torch.zeros(64, 48).scatter_(1, enc.top_indices, enc.top_acts)
        expected[f"{name}.latents"] = dense
        expected[f"{name}.recon"] = coder.decode(enc.top_acts, enc.top_indices)
save_file(expected, str(HERE / "expected.safetensors"))
print("sparsify", __import__("importlib.metadata").metadata.version("eai-sparsify"))
