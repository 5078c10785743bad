"""The Python API: ``inspect()``, ``calibrate_causal()``, ``harvest()``, ``intervene()``, ``contrast()``,
``steer()``, ``train_sae()``, ``eval_sae()``, ``compare()``, ``export_attribution_graph()``, ``transfer()``,
``transfer_table()``, ``export_neuronpedia()``, ``run_config()``, the utilities ``version()``, ``doctor()``,
``demo()``, ``validate()``, ``convert_records()``, ``publish_hf_artifact()``, ``pull()``, ``models_*()`` and
``store_*()`` (the ``models`` and ``store`` commands), and their result types.

Every CLI command is one call here plus argument parsing and rendering. Nothing here imports torch
until a function that needs a model runs. Each name is also reachable as ``interp_lab.NAME`` (loaded
on first use).
"""

from __future__ import annotations

from interp_lab.api.calibrate import CalibrationResult, calibrate_causal
from interp_lab.api.contrast import ContrastResult, contrast
from interp_lab.api.corpus import (
    ExportRecordsResult,
    ProbeSetResult,
    export_hf_records,
    export_nnsight_records,
    export_transformerlens_records,
    probe_set,
)
from interp_lab.api.criteria import CompileCriterionResult, compile_criterion
from interp_lab.api.demo import DemoResult, demo
from interp_lab.api.doctor import DoctorResult, doctor
from interp_lab.api.harvest import harvest
from interp_lab.api.hub import HubPullResult, PublishResult, publish_hf_artifact, pull
from interp_lab.api.inspect import InspectResult, inspect
from interp_lab.api.interventions import InterveneResult, intervene
from interp_lab.api.lens import LensResult, TrainLensResult, lens, train_lens
from interp_lab.api.match import MatchResult, compare, export_attribution_graph
from interp_lab.api.models import PullResult, models_info, models_list, models_pull
from interp_lab.api.neuronpedia import ExportNeuronpediaResult, export_neuronpedia
from interp_lab.api.run import run_config
from interp_lab.api.sae import SAETrainResult, train_sae
from interp_lab.api.sae_commands import eval_sae
from interp_lab.api.steer import SteerResult, steer
from interp_lab.api.store import (
    ContextRow,
    DiffResult,
    EncodeResult,
    StoreRow,
    StoreSummary,
    TraceResult,
    store_diff,
    store_encode,
    store_list,
    store_plot,
    store_remove,
    store_rename,
    store_search,
    store_summary,
    store_tag,
    store_top,
)
from interp_lab.api.transfer import transfer, transfer_table
from interp_lab.api.validate import ConvertRecordsResult, ValidateResult, convert_records, validate
from interp_lab.api.version import VersionResult, version

__all__ = ["CalibrationResult", "ContrastResult", "InspectResult", "InterveneResult", "MatchResult",
           "SAETrainResult", "SteerResult", "calibrate_causal", "compare", "contrast", "eval_sae",
           "export_attribution_graph", "harvest", "inspect", "intervene", "steer", "train_sae", "transfer",
           "transfer_table", "version", "VersionResult", "run_config", "doctor", "DoctorResult", "demo",
           "DemoResult", "validate", "ValidateResult", "convert_records", "ConvertRecordsResult", "models_info",
           "models_list", "models_pull", "PullResult", "store_diff", "store_encode", "store_list", "store_plot",
           "store_remove", "store_rename", "store_search", "store_summary", "store_tag", "store_top", "ContextRow",
           "DiffResult", "EncodeResult", "StoreRow", "StoreSummary", "TraceResult", "CompileCriterionResult",
           "ExportRecordsResult", "LensResult", "ProbeSetResult", "TrainLensResult", "compile_criterion",
           "export_neuronpedia", "ExportNeuronpediaResult",
           "export_hf_records", "export_transformerlens_records", "export_nnsight_records", "lens", "probe_set", "train_lens", "publish_hf_artifact", "pull", "PublishResult",
           "HubPullResult"]
