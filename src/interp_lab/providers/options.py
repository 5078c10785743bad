"""The flags of the imported providers (``inspect --backend neuronpedia | saelens | scope | goodfire`` and
third-party ones), spelled as interp-lab 0.2 spelled them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from interp_lab.errors import UsageError
from interp_lab.schemas.command import comma_ints, comma_list, option, str_or_none

SCOPE_SUITES = ("gemma-scope", "gemma-scope-2", "qwen-scope", "llama-scope")


def repeated(values: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """A repeatable flag's values, each of which may itself be a comma list."""
    return tuple(v for value in values or () for v in comma_list(value))


@dataclass(frozen=True)
class ProviderOptions:
    """Options of the imported providers. Each is read only by its backend."""

    neuronpedia_feature: tuple[str, ...] = option(
        (), "neuronpedia: feature refs (model@source:index, dashboard or API URLs); repeat the flag or "
            "give a comma list.", cli_type=Optional[list[str]], cli_default=None, convert=repeated)
    neuronpedia_url: str | None = option(None, "neuronpedia: the site (default https://www.neuronpedia.org; "
                                               "NEURONPEDIA_API_KEY is sent when set).")
    neuronpedia_json: str | None = option(None, "neuronpedia: a directory of saved feature responses, read "
                                                "instead of the site.", cli_type=Optional[Path],
                                          convert=str_or_none)
    saelens_release: str | None = option(None, "saelens: an SAE Lens release name, a Hugging Face repo, or a "
                                               "local SAE directory.")
    saelens_sae_id: str | None = option(None, "saelens: the SAE's id in the release (or its subdirectory).")
    saelens_feature_indexes: tuple[int, ...] = option(
        (), "saelens: the latents to measure and test (default: the SAE's top by the ranking).", cli_type=str,
        cli_default="", convert=comma_ints)
    scope_source: str | None = option(None, "scope: the suite (" + ", ".join(SCOPE_SUITES) + ").")
    scope_release: str | None = option(None, "scope: the suite's SAE Lens release (default: chosen from the "
                                             "suite, the model and the hook).")
    scope_sae_id: str | None = option(None, "scope: the SAE's id in the release, or a hook name such as "
                                            "blocks.6.hook_resid_post.")
    scope_feature_indexes: tuple[int, ...] = option(
        (), "scope: the latents to measure and test (default: the SAE's top by the ranking).", cli_type=str,
        cli_default="", convert=comma_ints)
    goodfire_top_k: int = option(20, "goodfire: features the SDK's search returns for the criterion.", min=1)
    provider_option: tuple[str, ...] = option(
        (), "A KEY=VALUE setting for a third-party provider (repeat the flag).", cli_type=Optional[list[str]],
        cli_default=None, convert=lambda v: tuple(v or ()))

    def __post_init__(self) -> None:
        if self.scope_source is not None and self.scope_source not in SCOPE_SUITES:
            raise UsageError(f"--scope-source: {self.scope_source!r} is not a suite interp-lab knows "
                             f"({', '.join(SCOPE_SUITES)}; any other SAE Lens release: --backend saelens)")
        self.extra()

    def extra(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.provider_option:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise UsageError(f"--provider-option: {item!r} is not KEY=VALUE")
            out[key.strip()] = value
        return out
