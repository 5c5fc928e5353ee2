"""Built-in extractors; importing this package registers them.

One module per concept: cepstral (mfcc, delta_mfcc), spectral shape (centroid, bandwidth,
rolloff, flatness, spectral_contrast), temporal (zcr, rms), tonal (chroma), harmonic (hnr),
rhythm (tempo). Registration order is the order below.
"""

from features.extractors import cepstral, harmonic, rhythm, spectral, temporal, tonal

__all__ = ["cepstral", "harmonic", "rhythm", "spectral", "temporal", "tonal"]
