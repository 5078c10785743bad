"""``train_sae()`` and ``eval_sae()``: SAEs and transcoders trained on a store (or on activations harvested
for the purpose), evaluated the way evidence.md defines, saved where SAE Lens can read them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from interp_lab.errors import UsageError
from interp_lab.io.paths import recorded_path
from interp_lab.sae.config import HELDOUT_MARGIN, PRESETS, TrainConfig
from interp_lab.schemas.records import SAE_MANIFEST

SCHEMA = "interp-lab.sae_metrics.v1"


@dataclass
class SAETrainResult:
    path: Path
    """The checkpoint directory (SAE Lens layout + metrics.json + manifest.json)."""
    metrics: dict[str, Any]
    store: Path
    hooks: tuple[str, ...]
    tokens_seen: int
    resumed_at: int
    seconds: float
    rank: int = 0
    """This process's rank in a torchrun run; only rank 0's result has the metrics (the others' is empty)."""
    world_size: int = 1
    """Processes that trained the SAE."""


def _out_paths(out: str | os.PathLike) -> tuple[Path, Path | None]:
    """(checkpoint dir, summary file): an ``out`` ending in .json (0.2 style) puts the checkpoint
    directory beside it, named by its stem, and the metrics summary in it (formats.md)."""
    p = Path(out)
    if p.suffix == ".json":
        return p.with_suffix(""), p
    return p, None


def harvest_for_sae(model: str, dataset: str, hooks: tuple[str, ...], tokens: int | None, *,
                    context_length: int = 128, text_column: str | None = None,
                    progress: Callable[[int, int], None] | None = None) -> Path:
    """A store of ``hooks`` for training, in the cache (resumed, and reused by later runs with the same
    model, dataset, hooks and size; an hf: dataset by its revision or fingerprint and text column)."""
    from interp_lab.harvest.run import harvest
    from interp_lab.io.cache import cache_dir
    from interp_lab.io.datasets import Corpus

    want = None if tokens is None else int(tokens * HELDOUT_MARGIN)
    corpus = Corpus(dataset, text_column)
    key = hashlib.sha256(json.dumps([model, corpus.key(), hooks, want, context_length]).encode()).hexdigest()[:16]
    out = cache_dir() / "stores" / key
    harvest(model, corpus, list(hooks), out, max_tokens=want, context_length=context_length, batch_size=16,
            progress=progress)
    return out


def train_sae(*, out: str | os.PathLike, store: str | os.PathLike | None = None, records: str | os.PathLike | None = None,
              max_records: int | None = None, hook: str | None = None,
              hook_out: str | None = None, model: str | None = None, dataset: str | None = None,
              text_column: str | None = None, layer: int | None = None, preset: str = "production",
              config: TrainConfig | None = None,
              checkpoint_every: int = 25, resume: bool = True, evaluate: bool = True, ce_tokens: int = 8192,
              records_out: str | os.PathLike | None = None, records_pooling: str = "max",
              causal_out: str | os.PathLike | None = None, criterion: str | None = None, causal_features: int = 5,
              fit_batch: bool = True, on_step: Callable[[dict[str, float]], None] | None = None,
              progress: Callable[..., None] | None = None,
              say: Callable[[str], None] | None = None) -> SAETrainResult:
    """Train an SAE (or, with ``hook_out``, a transcoder) and write its checkpoint to ``out``.

    Activations come from ``store``, from the feature vectors of activation ``records`` (one layer's;
    ``max_records`` keeps a deterministic sample), or are harvested from ``model`` over ``dataset`` (a
    cached store; ``text_column`` chooses an ``hf:`` dataset's text). ``hook`` defaults to
    ``blocks.{layer}.hook_resid_post``. ``config`` overrides the ``preset`` (minimal or production). The training state is kept beside ``out`` while training runs,
    so the same call after an interruption resumes; ``evaluate`` adds held-out reconstruction metrics
    and, with ``ce_tokens`` > 0, CE-loss recovered and KL (the model is loaded) to metrics.json.
    ``records_out`` writes activation records of the latents, one row per document of the store;
    ``causal_out`` intervention records of the ``causal_features`` latents most associated with
    ``criterion`` (``sae_interventions``). With ``records`` and ``fit_batch``, a batch size above an
    eighth of the records is lowered to that (a small file still gets several steps per pass);
    ``train_sae_step`` turns it off when the batch size is given.

    Under ``torchrun --nproc_per_node N`` the N processes train the SAE together (docs/SAE.md,
    "Distributed training"); rank 0 alone writes, evaluates and reports.
    """
    import time

    from interp_lab.sae.checkpoint import load_sae, save_sae
    from interp_lab.sae.data import split_rows
    from interp_lab.sae.distributed import process_group
    from interp_lab.sae.metrics import reconstruction_metrics
    from interp_lab.sae.records import POOLINGS
    from interp_lab.sae.train import train_sae as _train
    from interp_lab.store.reader import Store

    # every option is checked here, before a store is written, a model loaded or a step trained
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r} ({', '.join(PRESETS)})")
    cfg = config or PRESETS[preset]
    if records is not None and (store is not None or hook_out is not None):
        raise UsageError("--records trains an SAE on the records alone: no --store or --hook-out with it")
    if records_out is not None and records_pooling not in POOLINGS:
        raise UsageError(f"--records-pooling: {records_pooling!r} is not {' or '.join(POOLINGS)}")
    if records_out is not None and hook_out is not None:
        raise UsageError("--records-out: records are written for SAEs, not transcoders")
    from interp_lab.io.jsonl import check_jsonl_out

    for option, path in (("--records-out", records_out), ("--causal-out", causal_out)):
        if path is not None:
            check_jsonl_out(path, option)
    if causal_out is not None:
        if criterion is None or hook_out is not None:
            raise UsageError("--causal-out needs --criterion, and an SAE (not a transcoder)")
        if records is not None:
            raise UsageError("--causal-out intervenes on a model's hook; an SAE trained on --records reads none")
        from interp_lab.criteria.compile import check_criterion

        check_criterion(criterion)
    if records is None and store is None and (model is None or dataset is None):
        raise UsageError("give --store, or --model and --dataset to harvest the activations first")
    if text_column is not None and (dataset is None or store is not None or records is not None):
        raise UsageError("--text-column chooses the text of the --dataset harvested (without --store or --records)")
    if records is None and hook is None and layer is None:
        raise UsageError("give --hook or --layer (the hook is then blocks.{layer}.hook_resid_post)")
    with process_group() as ranks:
        lead = ranks is None or ranks.lead
        if not lead:
            on_step = progress = say = None  # rank 0 alone reports
        # a store written for the run (from records, or harvested) is written by rank 0, then reused by the others
        once = (lambda fn: fn()) if ranks is None else ranks.lead_first
        if records is not None:
            from interp_lab.io.cache import cache_dir
            from interp_lab.io.hashing import sha256_file
            from interp_lab.sae.from_records import records_store

            key = hashlib.sha256(json.dumps([sha256_file(records), layer, max_records]).encode()).hexdigest()[:16]
            store, hook = once(lambda: records_store(records, cache_dir() / "stores" / f"records-{key}", layer=layer,
                                                     max_records=max_records))
            ce_tokens = 0  # no model tokens behind records
            n = Store(store).rows
            if fit_batch and cfg.batch_size > n // 8:  # record files are small: keep several steps per pass
                cfg = replace(cfg, batch_size=max(8, n // 8))
        if hook is None:
            hook = f"blocks.{layer}.hook_resid_post"
        hooks = (hook,) if hook_out is None else (hook, hook_out)
        if store is None:
            store = once(lambda: harvest_for_sae(model, dataset, hooks, cfg.tokens if cfg.epochs is None else None,
                                                 text_column=text_column,
                                                 progress=None if progress is None else
                                                 (lambda done, total: progress("harvesting tokens", done, total))))
        st = Store(store)
        if evaluate and ce_tokens > 0:
            _check_revision(model or st.manifest.model, st)
        ckpt, summary = _out_paths(out)
        state_dir = ckpt.parent / f".{ckpt.name}.training"
        if not resume and state_dir.exists() and lead:
            shutil.rmtree(state_dir)
        if ranks is not None:
            ranks.barrier()  # nobody reads a state --fresh is removing
        t0 = time.time()
        res = _train(st, hook, cfg, hook_out=hook_out, state_dir=state_dir, checkpoint_every=checkpoint_every,
                     on_step=on_step, ranks=ranks)
        seconds = time.time() - t0
        path, metrics = ckpt, {}
        if lead:
            # SAE Lens v6 metadata (checkpoint.saelens_metadata adds its version keys); model_revision is ours
            # a records file by its path from the checkpoint (the cached store of it names it as first given)
            dataset = st.manifest.dataset if records is None else recorded_path(records, ckpt)
            meta = {"model_name": st.manifest.model, "hook_name": hook, "context_size": st.manifest.context_length,
                    "prepend_bos": False, "dataset_path": dataset, "model_revision": st.manifest.revision}
            if records is None:
                meta["seqpos_slice"] = [1, None]  # each window's first position (the attention sink) left out
            if hook_out:
                meta["hook_name_out"] = hook_out
            manifest = {"schema_version": SAE_MANIFEST, "architecture": cfg.architecture,
                        "sae_config": asdict(res.sae.cfg), "train_config": asdict(res.config or cfg), "hooks": list(hooks),
                        "store": recorded_path(st.root, ckpt), "dataset": dataset,
                        "dataset_hash": st.manifest.dataset_hash, "model": st.manifest.model,
                        "revision": st.manifest.revision, "scale_in": res.scale_in, "scale_out": res.scale_out,
                        "outlier_threshold": res.outlier_threshold, "tokens_seen": res.tokens_seen,
                        "resumed_at": res.resumed_at, "train_seconds": round(seconds, 1),
                        "world_size": res.world_size, "history": res.history}
            path = save_sae(res.sae, ckpt, scale_in=res.scale_in, scale_out=res.scale_out, metadata=meta,
                            extra={"manifest.json": (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()})
            if evaluate:
                metrics = evaluate_sae(path, store=st.root, hook=hook, hook_out=hook_out, model=model or st.manifest.model,
                                   ce_tokens=ce_tokens, say=say)
            else:
                metrics = {"heldout": reconstruction_metrics(load_sae(path), st, hook, split_rows(st).heldout,
                                                             hook_out=hook_out)}
            if records_out is not None:
                from interp_lab.sae.records import write_latent_records

                metrics["records"] = {"path": str(records_out), "pooling": records_pooling,
                                      "rows": write_latent_records(load_sae(path), st, hook, records_out,
                                                                   pooling=records_pooling, sae_id=str(path))}
            if causal_out is not None:
                got = sae_interventions(path, model or st.manifest.model, criterion, causal_out, top=causal_features,
                                        progress=progress)
                metrics["interventions"] = {k: v for k, v in got.items() if k != "evidence"}
            if summary is not None:
                from interp_lab.io.atomic import write_bytes_atomic

                # the metrics' paths are relative to the checkpoint; the summary's to its own directory
                here = summary.parent
                doc = {**metrics, "checkpoint": recorded_path(path, here), "store": recorded_path(st.root, here)}
                if "sae" in doc:
                    doc["sae"] = doc["checkpoint"]
                write_bytes_atomic(summary, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
            shutil.rmtree(state_dir, ignore_errors=True)
        if ranks is not None:
            ranks.barrier()  # the others exit once rank 0 has written and evaluated
    return SAETrainResult(path, metrics, Path(st.root), hooks, res.tokens_seen, res.resumed_at, seconds,
                          0 if ranks is None else ranks.rank, res.world_size)


def _check_revision(model: str | Any, st: Any) -> None:
    """A registered model whose revision is not the store's cannot splice its SAE in: said before any
    training or model load (other models are checked once loaded)."""
    from interp_lab.models.load import LoadedModel
    from interp_lab.models.registry import lookup

    spec = None if isinstance(model, LoadedModel) else lookup(str(model))
    revision = model.revision if isinstance(model, LoadedModel) else getattr(spec, "sha256", None)
    if revision and st.manifest.revision and revision != st.manifest.revision:
        raise UsageError(f"model {getattr(model, 'name', model)!r} is revision {revision[:12]}, the store was "
                         f"harvested from {st.manifest.revision[:12]}")


def evaluate_sae(sae: str | os.PathLike, *, store: str | os.PathLike, hook: str | None = None, hook_out: str | None = None,
             model: str | None = None, out: str | os.PathLike | None = None, ce_tokens: int = 8192,
             plot: bool = True, say: Callable[[str], None] | None = None,
             progress: Callable[..., None] | None = None) -> dict[str, Any]:
    """evidence.md's metrics of the checkpoint ``sae`` on the store's held-out documents, written to
    ``out`` (default ``sae/metrics.json``) with the density histogram beside it (``density.png``).
    ``model`` (default: the store's) is loaded to splice the SAE in; ``ce_tokens=0`` skips that."""
    from interp_lab.io.atomic import write_bytes_atomic
    from interp_lab.sae.checkpoint import _read_cfg, load_sae, read_metadata
    from interp_lab.sae.data import split_rows
    from interp_lab.sae.evaluate import density_histogram, spliced_metrics
    from interp_lab.sae.metrics import reconstruction_metrics
    from interp_lab.store.reader import Store

    root = Path(sae)
    coder = load_sae(root)
    _, cfg = _read_cfg(root)
    meta = read_metadata(cfg)
    hook = hook or meta.get("hook_name")
    hook_out = hook_out or meta.get("hook_name_out")
    if not hook:
        raise UsageError(f"{root / 'cfg.json'}: no metadata.hook_name; give --hook")
    st = Store(store)
    if ce_tokens > 0:
        _check_revision(model or st.manifest.model, st)
    rows = split_rows(st).heldout
    rec = reconstruction_metrics(coder, st, hook, rows, hook_out=hook_out, frequencies=True)
    freq = rec.pop("frequencies")
    target = Path(out) if out is not None else root / "metrics.json"
    # paths relative to metrics.json's directory (io.paths)
    metrics: dict[str, Any] = {"schema_version": SCHEMA, "sae": recorded_path(root, target.parent),
                               "architecture": cfg.get("architecture"), "d_in": coder.cfg.d_in,
                               "d_sae": coder.cfg.d_sae, "hook": hook, "hook_out": hook_out,
                               "store": recorded_path(st.root, target.parent), "model": st.manifest.model,
                               "revision": st.manifest.revision,
                               "heldout": {"documents": "10% of documents by id hash, first position left out", **rec}}
    if ce_tokens > 0:
        from interp_lab.models.load import load_model

        name = model or st.manifest.model
        lm = load_model(name, say=say)
        _check_revision(lm, st)
        metrics["spliced"] = spliced_metrics(coder, lm, st, hook, rows, hook_out=hook_out, max_tokens=ce_tokens,
                                         progress=progress)
    if plot:
        png = density_histogram(freq, target.with_name("density.png"), f"{root.name}: {hook}")
        metrics["density_histogram"] = None if png is None else png.name
        if png is None:
            from interp_lab.io.figures import missing_note

            metrics["notes"] = [missing_note("density.png")]
            if say:
                say(f"note: {metrics['notes'][0]}")
    write_bytes_atomic(target, (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode())
    return metrics


def sae_interventions(sae: str | os.PathLike, model: Any, criterion: str, out: str | os.PathLike, *, top: int = 5,
                      prompts: str | None = None, settings: Any = None,
                      progress: Callable[..., None] | None = None) -> dict[str, Any]:
    """Intervention records (formats.md) for the ``top`` latents of ``sae`` most associated with the
    criterion on discovery prompts (difference of mean last-token activation between the classes),
    each ablated / steered with controls on held-out prompts (evidence.md rule 7); what ``inspect
    --interventions`` reads. ``progress(stage, done, total)`` hears of each stage."""
    import numpy as np
    import torch

    from interp_lab.api.interventions import summarize, write_records
    from interp_lab.evidence.stats import class_cut
    from interp_lab.interventions.features import Target
    from interp_lab.interventions.run import run_interventions, split_set
    from interp_lab.interventions.settings import InterventionSettings
    from interp_lab.providers.hf import setup
    from interp_lab.sae.space import latent_space

    settings = settings or InterventionSettings()
    space = latent_space(sae)
    s = setup(model, criterion, prompts=prompts, n_side=settings.side_prompts, say=progress)
    rows = s.compiled.split("discovery")
    if not rows:
        raise UsageError(f"criterion {criterion!r}: no discovery prompts to choose latents on")
    acts = split_set(s.lm, rows, settings.batch_size).last_token_acts([space.hook])[space.hook]
    z = space.values(torch.from_numpy(acts), range(space.size)).numpy()
    score = np.array([r["criterion_score"] for r in rows], dtype=float)
    pos = score > class_cut(score)
    if pos.all() or not pos.any():
        raise UsageError(f"criterion {criterion!r}: the discovery prompts are all of one class")
    diff = z[pos].mean(0) - z[~pos].mean(0)
    chosen = [int(i) for i in np.argsort(-np.abs(diff), kind="stable")[:top]]
    targets = [Target(space, i) for i in chosen]
    run = run_interventions(s.lm, s.compiled.rows, targets, s.scorer, s.unrelated, criterion=s.compiled.spec.criterion,
                            settings=settings, progress=progress)
    n = write_records(run.records, out)
    return {"path": str(out), "rows": n, "features": [space.feature_id(i) for i in chosen],
            "discovery_difference": {space.feature_id(i): round(float(diff[i]), 6) for i in chosen},
            "evidence": summarize(run.records, s.compiled, settings.seed,  # tested in their discovery direction
                                  {space.feature_id(i): (1 if diff[i] >= 0 else -1) for i in chosen}, run.strengths)}
