"""The built-in providers, registered under the entry-point group ``interp_lab.providers`` like any other.

``synthetic``, ``records`` and ``features`` read files (or generate planted data); ``hf`` and ``sae`` plan
the model's own forward passes; ``saelens`` and ``scope`` plan them with an SAE Lens SAE;
``neuronpedia`` and ``goodfire`` import features described elsewhere (measured on the model when its SAE
is at hand, else ranked by how their descriptions match the criterion: ``providers.imported``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp_lab.errors import UsageError
from interp_lab.io.inputs import InputInfo
from interp_lab.providers.base import Evidence, ModelPlan, Request


@dataclass(frozen=True)
class Builtin:
    name: str
    source: str
    needs: str

    def check(self, request: Request) -> None:
        """Nothing to check beyond what ``provide`` reads."""

    def provide(self, request: Request, progress: Any) -> Evidence | ModelPlan:
        raise NotImplementedError


def load_files(request: Request, progress: Any, ev: Evidence | None = None) -> Evidence:
    """Records, a feature dump and intervention records given to ``inspect`` (whatever the backend)."""

    from interp_lab.evidence.causal import load_interventions
    from interp_lab.io.records import read_records

    ev = ev or Evidence(backend=request.backend)
    if request.records is not None:
        ev.matrix = read_records(request.records, progress=lambda d, t: progress("reading records", d, t))
        ev.matrix.path = Path(request.records).name  # the report names inputs without their directories
        ev.inputs.append(InputInfo.file("records", request.records, rows=ev.matrix.n_rows))
    if request.features is not None:
        from interp_lab.providers.features import load_dump

        ev.dump = load_dump(request.features)
        ev.dump.path = Path(request.features).name
        ev.inputs.append(InputInfo.file("features", request.features, rows=len(ev.dump.rows)))
    if request.interventions is not None:
        ev.table = load_interventions(request.interventions, request.criterion,
                                      allow_mismatch=request.allow_intervention_criterion_mismatch)
        ev.table.path = Path(request.interventions).name
        ev.inputs.append(InputInfo.file("interventions", request.interventions, rows=ev.table.rows_read))
    if ev.rank_on is None:
        ev.rank_on = ev.matrix
    if ev.dump is not None and ev.matrix is not None and request.backend == "features":
        from interp_lab.providers.features import signature_matrix

        ev.rank_on, sig_notes = signature_matrix(ev.dump, ev.matrix)
        ev.notes.extend(sig_notes)
    elif request.backend == "features":
        ev.rank_on = None
    return ev


class Files(Builtin):
    """``records`` and ``features``: the files given."""

    def check(self, request: Request) -> None:
        if self.name == "records" and request.records is None:
            raise UsageError("--backend records needs --records")
        if self.name == "features" and request.features is None:
            raise UsageError("--backend features needs --features")

    def provide(self, request: Request, progress: Any) -> Evidence:
        return load_files(request, progress)


class Synthetic(Builtin):
    def provide(self, request: Request, progress: Any) -> Evidence:
        from interp_lab.evidence.causal import interventions_from_dicts
        from interp_lab.providers.synthetic import SyntheticSpec, generate

        ev = Evidence(backend=self.name)
        extra = {"model": request.model} if request.model else {}
        spec = SyntheticSpec(**{"seed": request.seed, **(request.synthetic or {}), **extra})
        gen = generate(spec)
        ev.matrix, ev.planted, ev.synthetic_params = gen.records, gen.planted, spec.as_dict()
        ev.inputs.append(InputInfo.synthetic(ev.synthetic_params))
        if request.interventions is None and gen.interventions:
            ev.table = interventions_from_dicts(gen.interventions, request.criterion, name="synthetic interventions")
        ev.warnings.append("SYNTHETIC EVIDENCE: generated with planted ground truth by "
                           "interp_lab.providers.synthetic; it measures no model")
        return load_files(request, progress, ev)


class ModelRun(Builtin):
    """``hf`` and ``sae``: the model's own forward passes (``api.hf``)."""

    def check(self, request: Request) -> None:
        if request.model is None:
            raise UsageError(f"--backend {self.name} needs --model")

    def provide(self, request: Request, progress: Any) -> ModelPlan:
        from interp_lab.providers.hf import HFOptions

        return ModelPlan(pipeline=self.name, hf=HFOptions.from_value(request.hf))  # type: ignore[arg-type]


class SAELens(Builtin):
    """``saelens``: ``--saelens-release`` (a release name or a directory), ``--saelens-sae-id``,
    ``--saelens-feature-indexes``."""

    def check(self, request: Request) -> None:
        o = request.options
        if request.model is None:
            raise UsageError(f"--backend {self.name} needs --model (the SAE's latents are read on its activations)")
        if self.name == "saelens" and not o.saelens_release:
            raise UsageError("--backend saelens needs --saelens-release (a release name or an SAE directory)")
        if self.name == "scope" and not o.scope_source:
            raise UsageError("--backend scope needs --scope-source (" + ", ".join(_suites()) + ")")

    def provide(self, request: Request, progress: Any) -> ModelPlan:
        from interp_lab.providers import saelens as sl

        o = request.options
        if self.name == "scope":
            release, sae_id, indexes = o.scope_release, o.scope_sae_id, o.scope_feature_indexes
            local = sl.local_checkpoint(release, sae_id) if release else None
            provenance: dict[str, Any] = {"suite": o.scope_source}
            if local is None:
                directory = sl._directory()
                hook = sae_id if sae_id and sl._layer_of_hook(sae_id) is not None else None
                release = release or sl.scope_release(o.scope_source, request.model, hook, directory)
                if release not in directory:
                    raise UsageError(f"--scope-release: {release!r} is not in SAE Lens's directory")
                if not sae_id:
                    raise UsageError(f"--backend scope needs --scope-sae-id (an SAE of {release}, or a hook name "
                                     "like blocks.6.hook_resid_post)")
                sae_id = sl.scope_sae_id(release, sae_id, directory)
        else:
            release, sae_id, indexes = o.saelens_release, o.saelens_sae_id, o.saelens_feature_indexes
            local, provenance = sl.local_checkpoint(release, sae_id), {}
        if local is None:
            if not sae_id:
                raise UsageError(f"--backend {self.name} needs --{self.name}-sae-id for the release {release!r}")
            local = sl.pretrained_checkpoint(release, sae_id, progress)
            provenance.update({"release": release, "sae_id": sae_id})
        else:
            provenance.update({"directory": Path(local).name})
        notes = [f"SAE from {provenance.get('release') or local} ({self.name})"
                 + (f", sae_id {sae_id}" if sae_id else "")]
        if indexes:
            notes.append(f"latents {', '.join(map(str, indexes))} selected by --{self.name}-feature-indexes: "
                         "measured and tested whatever their rank")
        return sl.plan(request, Path(local), tuple(indexes), {"source": self.name, **provenance}, notes)


def _suites() -> tuple[str, ...]:
    from interp_lab.providers.options import SCOPE_SUITES

    return SCOPE_SUITES


class Neuronpedia(Builtin):
    def check(self, request: Request) -> None:
        o = request.options
        if not o.neuronpedia_feature and not o.neuronpedia_json:
            raise UsageError("--backend neuronpedia needs --neuronpedia-feature REF (model@source:index or a "
                             "Neuronpedia URL) or --neuronpedia-json DIR")

    def provide(self, request: Request, progress: Any) -> Evidence | ModelPlan:
        from interp_lab.providers import imported

        return imported.neuronpedia(request, progress)


class Goodfire(Builtin):
    def check(self, request: Request) -> None:
        from interp_lab.providers import imported

        imported.goodfire_client()

    def provide(self, request: Request, progress: Any) -> Evidence:
        from interp_lab.providers import imported

        return imported.goodfire(request, progress)


def _info(name: str) -> tuple[str, str]:
    from interp_lab.providers import BUILTIN

    return BUILTIN[name].source, BUILTIN[name].needs


SYNTHETIC = Synthetic("synthetic", *_info("synthetic"))
RECORDS = Files("records", *_info("records"))
FEATURES = Files("features", *_info("features"))
HF = ModelRun("hf", *_info("hf"))
SAE = ModelRun("sae", *_info("sae"))
SAELENS = SAELens("saelens", *_info("saelens"))
SCOPE = SAELens("scope", *_info("scope"))
NEURONPEDIA = Neuronpedia("neuronpedia", *_info("neuronpedia"))
GOODFIRE = Goodfire("goodfire", *_info("goodfire"))
