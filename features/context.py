"""The shared spectral context: one STFT per segment, read by every extractor.

This is librosa's ``S=`` idea applied across features: :class:`SpectralContext` computes the
STFT once (``center=True``, zero padding, Hann window: librosa's defaults) and derives the
magnitude, power, mel power and dB-scaled mel from it lazily with ``cached_property``. An
extractor that asks for ``ctx.mel_db`` after another already did costs nothing.

The definitions equal librosa's own on the raw signal, so for example
``librosa.feature.mfcc(S=ctx.mel_db, n_mfcc=k)`` equals ``librosa.feature.mfcc(y=y, sr=sr,
n_fft=n_fft, hop_length=hop, n_mels=n_mels, n_mfcc=k)``; ``mel_db`` is
``power_to_db(mel, ref=1.0, top_db=80)``.
"""

from __future__ import annotations

from functools import cached_property, lru_cache

import librosa
import numpy as np
import scipy.sparse

from features.config import FeaturesSpec
from features.tuning import estimate_tuning

__all__ = ["SpectralContext", "mel_basis"]


@lru_cache(maxsize=16)
def mel_basis(sr: int, n_fft: int, n_mels: int) -> scipy.sparse.csr_array:
    """The Slaney mel filter bank (librosa's default) as a sparse matrix, memoised.

    Building it costs more than applying it to a short segment, and each filter spans only a
    few FFT bins: the sparse product is ~8x faster than librosa's dense einsum and equal to
    it within float32 rounding.
    """
    return scipy.sparse.csr_array(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels))


class SpectralContext:
    """Lazily computed, memoised spectra of one mono segment.

    Args:
        y: the segment, 1-D float32.
        sr: sample rate in Hz.
        n_fft: FFT size (also the frame length of time-domain features).
        hop_length: hop between frames in samples.
        n_mels: mel bands.
        n_mfcc: MFCC coefficients.
    """

    def __init__(
        self, y: np.ndarray, sr: int, n_fft: int, hop_length: int, n_mels: int, n_mfcc: int
    ) -> None:
        self.y = y
        self.sr = sr
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.n_mfcc = n_mfcc
        # The whole config, for extractors with settings of their own (features.embedding).
        self.features: FeaturesSpec | None = None

    @classmethod
    def from_spec(cls, y: np.ndarray, sr: int, features: FeaturesSpec) -> SpectralContext:
        """Build a context with the parameters of ``features`` (kept as ``ctx.features``)."""
        ctx = cls(
            y, sr, features.n_fft, features.hop_length, features.n_mels, features.mfcc.n_mfcc
        )
        ctx.features = features
        return ctx

    @cached_property
    def stft(self) -> np.ndarray:
        """Complex STFT ``(1 + n_fft // 2, n_frames)``."""
        return librosa.stft(self.y, n_fft=self.n_fft, hop_length=self.hop_length)

    @cached_property
    def mag(self) -> np.ndarray:
        """STFT magnitude, C-ordered (librosa returns Fortran order; the mel product and the
        per-frame reductions are faster on rows)."""
        return np.abs(self.stft, order="C")

    @cached_property
    def power(self) -> np.ndarray:
        """STFT power (magnitude squared)."""
        return self.mag**2

    @cached_property
    def mel(self) -> np.ndarray:
        """Mel power spectrogram ``(n_mels, n_frames)``."""
        return mel_basis(self.sr, self.n_fft, self.n_mels) @ self.power

    @cached_property
    def mel_db(self) -> np.ndarray:
        """Mel power in dB (ref 1.0, top_db 80), as librosa.feature.mfcc computes it."""
        return librosa.power_to_db(self.mel)

    @cached_property
    def mfcc(self) -> np.ndarray:
        """MFCCs ``(n_mfcc, n_frames)`` from ``mel_db`` (shared by mfcc and delta_mfcc)."""
        return librosa.feature.mfcc(S=self.mel_db, n_mfcc=self.n_mfcc)

    @cached_property
    def freqs(self) -> np.ndarray:
        """Centre frequency of every STFT bin in Hz."""
        return librosa.fft_frequencies(sr=self.sr, n_fft=self.n_fft)

    @cached_property
    def mag_total(self) -> np.ndarray:
        """Sum of the magnitude over bins per frame, float64 (the normaliser of moments)."""
        return self.mag.sum(axis=0, dtype=np.float64)

    @cached_property
    def centroid(self) -> np.ndarray:
        """Spectral centroid in Hz ``(n_frames,)``, float64; 0 for silent frames.

        Equals ``librosa.feature.spectral_centroid`` (magnitude-weighted mean frequency) as
        one matrix-vector product instead of normalising a copy of the spectrogram.
        """
        silent = self.mag_total <= np.finfo(self.mag.dtype).tiny
        # einsum, not BLAS: the result must not depend on the number of BLAS threads.
        weighted = np.einsum("f,ft->t", self.freqs, self.mag)
        return np.where(silent, 0.0, weighted / np.where(silent, 1.0, self.mag_total))

    @cached_property
    def onset_envelope(self) -> np.ndarray:
        """Onset strength from ``mel_db`` (librosa.onset.onset_strength's own definition)."""
        return librosa.onset.onset_strength(S=self.mel_db, sr=self.sr)

    @cached_property
    def chroma(self) -> np.ndarray:
        """Chromagram ``(12, n_frames)`` from ``power`` (shared by chroma and tonnetz).

        Equals ``librosa.feature.chroma_stft(y=...)`` including its tuning estimate, made by
        ``features.tuning.estimate_tuning`` on the band librosa's estimate reads (the same
        value, a sixth of the cost). A segment without any pitched peak (e.g. silence) gets
        tuning 0, as librosa does, without its warning for every such segment.
        """
        tuning = estimate_tuning(self.power, self.sr, self.n_fft)
        return librosa.feature.chroma_stft(S=self.power, sr=self.sr, tuning=tuning)

    @cached_property
    def beats(self) -> tuple[float, np.ndarray]:
        """Tempo (bpm) and beat frames tracked on ``onset_envelope`` (``features.beat``)."""
        from features.beat import beat_track

        return beat_track(self.onset_envelope, self.sr, self.hop_length)

    @property
    def n_frames(self) -> int:
        """Number of STFT frames (``1 + len(y) // hop_length``)."""
        return 1 + len(self.y) // self.hop_length
