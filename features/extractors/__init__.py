"""Built-in extractors, one module per concept; ``features._registry.BUILTIN`` names them.

cepstral (mfcc, delta_mfcc), spectral shape (centroid, bandwidth, rolloff, flatness,
spectral_contrast), temporal (zcr, rms), tonal (chroma, tonnetz), harmonic (hnr), rhythm
(tempo, onset), mel_bands (mel), pitch (pitch), hpss (hpss) and voice (praat, egemaps; the
``voice`` extra). Importing this package imports nothing: ``features.ensure_loaded()`` imports
the modules, which register their extractors.
"""
