"""interp-lab: criterion-driven mechanistic interpretability.

``import interp_lab`` is light: the API functions and result types of ``interp_lab.api`` are reachable
here (``from interp_lab import inspect, compare``) but load their machinery on first use, and nothing
here imports torch.
"""

from __future__ import annotations

from typing import Any

from interp_lab._version import __version__

# interp_lab.api.__all__, named here so that listing them needs no import (a test keeps the two equal)
_API = ("CalibrationResult", "ContrastResult", "InspectResult", "InterveneResult", "MatchResult",
        "SAETrainResult", "SteerResult", "calibrate_causal", "compare", "contrast", "eval_sae",
        "export_attribution_graph", "harvest", "inspect", "intervene", "steer", "train_sae", "transfer",
        "transfer_table", "version", "VersionResult", "run_config", "doctor", "DoctorResult", "demo", "DemoResult",
        "validate", "ValidateResult", "convert_records", "ConvertRecordsResult", "models_info", "models_list",
        "models_pull", "PullResult", "store_diff", "store_encode", "store_list", "store_plot", "store_remove",
        "store_rename", "store_search", "store_summary", "store_tag", "store_top", "ContextRow", "DiffResult",
        "EncodeResult", "StoreRow", "StoreSummary", "TraceResult", "CompileCriterionResult", "ExportRecordsResult",
        "LensResult", "ProbeSetResult", "TrainLensResult", "compile_criterion", "export_hf_records",
        "export_transformerlens_records", "export_nnsight_records", "lens",
        "probe_set", "train_lens", "export_neuronpedia", "ExportNeuronpediaResult", "publish_hf_artifact", "pull",
        "PublishResult", "HubPullResult")


def __getattr__(name: str) -> Any:
    if name in _API:
        from interp_lab import api

        return getattr(api, name)
    raise AttributeError(f"module 'interp_lab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))


__all__ = ["__version__", *_API]
