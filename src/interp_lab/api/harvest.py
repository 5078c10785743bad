"""``interp-lab harvest``: a model's hook activations over documents, streamed into a resumable store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from interp_lab import defaults
from interp_lab.api.registry import command
from interp_lab.io.datasets import DATASET_HELP, TEXT_COLUMN_HELP
from interp_lab.schemas.command import Progress, option

if TYPE_CHECKING:  # not at import: ``interp_lab.harvest`` is this function until the package is imported
    from interp_lab.harvest.run import HarvestResult


@dataclass(kw_only=True)
class HarvestOptions:
    model: Any = option(defaults.MODEL, "Registered name, local directory or HF id.", cli_type=str)  # or a LoadedModel
    dataset: str = option(help=DATASET_HELP)
    text_column: str | None = option(None, TEXT_COLUMN_HELP)
    hooks: str | list[str] = option("blocks.*.hook_resid_post", "Comma list of hook names; blocks.*.X for every layer.",
                                    cli_type=str)
    out: Path = option(Path("store"), "Store directory (resumed if it holds a partial harvest).", required=True)
    max_tokens: int | None = option(None, min=1)
    context_length: int = option(256, min=2)
    batch_size: int = option(8, min=1)
    dtype: Literal["float16", "bfloat16", "float32"] = option("float16", "Storage dtype.")
    shard_tokens: int = option(65536, "Tokens per shard (whole batches).", min=1)
    overwrite: bool = option(False, "Start over instead of resuming.")
    engine: Literal["hooks", "transformerlens", "nnsight"] = option(
        "hooks", "What reads the hooks: interp-lab's own PyTorch hooks, TransformerLens (TransformerBridge) or "
                 "nnsight; same store, same hook names.")


@command("harvest", options=HarvestOptions, result="interp_lab.harvest.run.HarvestResult", group="models and stores", step=True, log=True,
         positional=("model", "dataset", "hooks", "out"),
         help="Run a model over documents and stream hook activations into a resumable store.")
def harvest(o: HarvestOptions, progress: Progress) -> HarvestResult:
    """Harvest ``hooks`` of ``model`` over ``dataset`` into the store at ``out`` (resuming if it is there);
    ``model`` is a registered name, a local directory, a Hugging Face id or an already loaded ``LoadedModel``;
    ``engine`` reads the hooks (see ``interp_lab.harvest.run.harvest``)."""
    from interp_lab.harvest.run import harvest as run

    return run(o.model, o.dataset, o.hooks, o.out, max_tokens=o.max_tokens, context_length=o.context_length,
               batch_size=o.batch_size, dtype=o.dtype, shard_tokens=o.shard_tokens, overwrite=o.overwrite,
               text_column=o.text_column, engine=o.engine,
               progress=lambda done, total: progress("harvesting tokens", done, total))
