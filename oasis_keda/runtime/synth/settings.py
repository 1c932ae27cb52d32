"""The model settings (``meta-data/model_settings.json``), the analysis settings and the
``oasislmf.json`` that ties the model directory together."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from oasis_keda.runtime.synth.common import DEFAULT_SAMPLES, MODEL, PERILS

#: Every ORD output kind, switched on in each summary of the analysis settings.
ORD_OUTPUTS = (
    "plt_sample",
    "plt_quantile",
    "plt_moment",
    "elt_sample",
    "elt_quantile",
    "elt_moment",
    "alt_period",
    "ept_full_uncertainty_aep",
    "ept_full_uncertainty_oep",
    "ept_mean_sample_aep",
    "ept_mean_sample_oep",
    "ept_per_sample_mean_aep",
    "ept_per_sample_mean_oep",
    "psept_aep",
    "psept_oep",
    "return_period_file",
)


def model_settings(events: int, footprint_sets: Sequence[str] = ()) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "event_set": {
            "name": "Event Set",
            "desc": "Synthetic event set",
            "default": "p",
            "options": [{"id": "p", "desc": "Probabilistic", "number_of_events": events}],
        },
        "event_occurrence_id": {
            "name": "Occurrence Set",
            "desc": "Occurrence",
            "default": "lt",
            "options": [{"id": "lt", "desc": "Long Term"}],
        },
    }
    if footprint_sets:  # ods_tools' model settings schema: model_settings.footprint_set
        settings["footprint_set"] = {
            "name": "Footprint Set",
            "desc": "Synthetic footprint set",
            "default": footprint_sets[0],
            "options": [{"id": s, "desc": f"Footprint set {s}"} for s in footprint_sets],
        }
    return {
        "version": "3",
        "model_settings": settings,
        "lookup_settings": {"supported_perils": [{"id": p, "desc": p} for p in PERILS]},
        "model_default_samples": DEFAULT_SAMPLES,
    }


def analysis_settings(
    samples: int = DEFAULT_SAMPLES, *, footprint_set: str | None = None
) -> dict[str, Any]:
    """Analysis settings for the synthetic model: GUL and IL, every ORD output kind; the
    footprint set ``footprint_set`` if given (a model written with footprint sets has no
    plain footprint, so its runs must choose one)."""
    chosen = {"event_set": "p", "event_occurrence_id": "lt"}
    if footprint_set is not None:
        chosen["footprint_set"] = footprint_set
    ord_output = {name: True for name in ORD_OUTPUTS}
    return {
        "version": "3",
        "source_tag": "oasis-keda",
        "analysis_tag": "synth",
        "model_supplier_id": MODEL["supplier_id"],
        "model_name_id": MODEL["model_id"],
        "number_of_samples": samples,
        "gul_threshold": 0,
        "model_settings": chosen,
        "gul_output": True,
        "gul_summaries": [{"id": 1, "ord_output": dict(ord_output)}],
        "il_output": True,
        "il_summaries": [{"id": 1, "ord_output": dict(ord_output)}],
    }


def oasislmf_config() -> dict[str, Any]:
    """``oasislmf.json``: where each part of the model directory is (paths relative to it)."""
    return {
        "model_data_dir": "model_data",
        "lookup_config_json": "keys_data/lookup_config.json",
        "lookup_data_dir": "keys_data",
        "model_settings_json": "meta-data/model_settings.json",
        "analysis_settings_json": "analysis_settings.json",
        "oed_location_csv": "location.csv",
        "oed_accounts_csv": "account.csv",
        "gulmc": True,
        "modelpy": False,
        "gulpy": False,
    }
