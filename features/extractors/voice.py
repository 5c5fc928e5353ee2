"""The field's standard voice sets: Praat's voice measures and openSMILE's eGeMAPS.

Both need the ``voice`` extra (``pip install "audioml[voice]"``: praat-parselmouth, GPLv3,
and opensmile, audEERING's research licence, free for non-commercial use; both ship their
binaries in the wheels and run offline). The packages are imported here, when an extractor
first runs, never at spec validation (``features._registry`` only locates them). Neither
reads the shared STFT: each runs its own analysis on the segment's samples.

``praat`` columns (scalars per segment; Praat's standard "voice report" settings, pitch range
75-600 Hz):

* ``praat_f0_mean_hz``, ``praat_f0_std_hz``, ``praat_f0_min_hz``, ``praat_f0_max_hz``:
  ``Sound.to_pitch`` (autocorrelation), voiced frames only;
* ``praat_jitter_local``, ``praat_jitter_rap``: "To PointProcess (periodic, cc)" then
  "Get jitter (local)" / "(rap)" (period range 0.1-20 ms, factor 1.3);
* ``praat_shimmer_local``, ``praat_shimmer_apq3``: "Get shimmer (local)" / "(apq3)";
* ``praat_hnr_db``: mean of ``Sound.to_harmonicity_cc`` over frames Praat does not mark
  as silent (-200 dB);
* ``praat_f1_hz`` .. ``praat_f3_hz``: mean formants of ``Sound.to_formant_burg``.

Undefined values (no voiced frame) become 0, as everywhere in the table.

``egemaps`` columns: the 88 eGeMAPSv02 functionals (Eyben et al. 2016, designed for
speaker traits), ``egemaps_<openSMILE name>``, e.g. ``egemaps_F0semitoneFrom27.5Hz_sma3nz_amean``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from features._registry import register_feature
from features.context import SpectralContext

__all__ = ["PITCH_CEILING", "PITCH_FLOOR", "egemaps", "praat"]

PITCH_FLOOR = 75.0
PITCH_CEILING = 600.0
_PERIOD = (0.0, 0.0, 0.0001, 0.02, 1.3)  # time range (all), shortest/longest period, factor
_SILENT_HNR = -200.0


def _number(value: Any) -> float:
    value = float(value)
    return value if np.isfinite(value) else 0.0


@register_feature("praat")
def praat(ctx: SpectralContext) -> dict[str, float]:
    """Praat's f0, jitter, shimmer, HNR and formants (see the module docstring)."""
    import parselmouth
    from parselmouth.praat import call

    sound = parselmouth.Sound(ctx.y.astype(np.float64), sampling_frequency=ctx.sr)
    f0 = sound.to_pitch(pitch_floor=PITCH_FLOOR, pitch_ceiling=PITCH_CEILING)
    hz = f0.selected_array["frequency"]
    hz = hz[hz > 0]
    points = call(sound, "To PointProcess (periodic, cc)", PITCH_FLOOR, PITCH_CEILING)
    harmonicity = sound.to_harmonicity_cc(minimum_pitch=PITCH_FLOOR).values
    harmonicity = harmonicity[harmonicity != _SILENT_HNR]
    formants = sound.to_formant_burg()
    out = {
        "f0_mean_hz": float(hz.mean()) if len(hz) else 0.0,
        "f0_std_hz": float(hz.std()) if len(hz) else 0.0,
        "f0_min_hz": float(hz.min()) if len(hz) else 0.0,
        "f0_max_hz": float(hz.max()) if len(hz) else 0.0,
        "jitter_local": _number(call(points, "Get jitter (local)", *_PERIOD)),
        "jitter_rap": _number(call(points, "Get jitter (rap)", *_PERIOD)),
        "shimmer_local": _number(call([sound, points], "Get shimmer (local)", *_PERIOD, 1.6)),
        "shimmer_apq3": _number(call([sound, points], "Get shimmer (apq3)", *_PERIOD, 1.6)),
        "hnr_db": float(harmonicity.mean()) if len(harmonicity) else 0.0,
    }
    for k in (1, 2, 3):
        out[f"f{k}_hz"] = _number(call(formants, "Get mean", k, 0, 0, "hertz"))
    return out


@cache
def _smile() -> Any:
    """One openSMILE extractor per process (building it parses the config: ~0.2 s)."""
    import opensmile

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )


@register_feature("egemaps")
def egemaps(ctx: SpectralContext) -> dict[str, float]:
    """The 88 eGeMAPSv02 functionals of the segment (openSMILE)."""
    frame = _smile().process_signal(ctx.y, ctx.sr)
    return {str(name): _number(value) for name, value in frame.iloc[0].items()}
