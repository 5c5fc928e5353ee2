"""A synthetic two-class corpus (music vs speech) for the demo: numpy synthesis, no download.

Music is harmonic notes with ADSR envelopes, chords, a melody and a drum beat at varying
tempo and key; speech is a jittered glottal pulse train through formant resonators, shaped
into syllables and phrases with fricatives and pauses. The classes overlap on purpose (sparse
vibrato solos, speech over a tonal hum, random gains and noise) so that no single loudness,
zero-crossing or brightness threshold separates them, while a few features together do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["CLASSES", "synth_music", "synth_speech", "synthesize_corpus"]

CLASSES: tuple[str, ...] = ("music", "speech")

#: Vowel formants F1, F2, F3 in Hz (Peterson & Barney, adult male averages).
VOWELS = np.array(
    [[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480],
     [570, 840, 2410], [660, 1720, 2410], [440, 1020, 2240], [390, 1990, 2550]],
    dtype=float,
)  # fmt: skip
#: Synthetic speakers: f0 low and high (Hz), formant scale (shorter vocal tract -> higher).
SPEAKERS = ((85, 150, 1.0), (100, 180, 0.95), (120, 170, 1.05),
            (165, 230, 1.15), (180, 255, 1.2), (170, 240, 1.1))  # fmt: skip
MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
MINOR = np.array([0, 2, 3, 5, 7, 8, 10])


def synthesize_corpus(
    out_dir: Path,
    *,
    seed: int = 7,
    clips_per_class: int = 30,
    duration_s: float = 4.0,
    sample_rate: int = 16000,
) -> Path:
    """Write ``out_dir/music/*.wav`` and ``out_dir/speech/*.wav`` (16-bit PCM, mono).

    The same arguments give the same bytes on every run: each clip draws from its own
    generator seeded by ``(seed, class index, clip index)``.

    Returns:
        ``out_dir``, which the folder data source reads as is.
    """
    out_dir = Path(out_dir)
    n = round(duration_s * sample_rate)
    for c, label in enumerate(CLASSES):
        folder = out_dir / label
        folder.mkdir(parents=True, exist_ok=True)
        synth = synth_music if label == "music" else synth_speech
        for i in range(clips_per_class):
            rng = np.random.default_rng([seed, c, i])
            y = _master(synth(rng, n, sample_rate), rng, sample_rate)
            sf.write(folder / f"{label}_{i:03d}.wav", y, sample_rate, subtype="PCM_16")
    return out_dir


def _master(y: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Add a room-like noise floor, peak-normalise to a random level; a few are very quiet."""
    # Real pauses are never digital silence; room noise is mostly low-frequency.
    floor = _shape_noise(rng, len(y), sr, 20, 1200)
    y = y + floor * np.sqrt(np.mean(y**2) / np.mean(floor**2)) * 10 ** (-rng.uniform(40, 55) / 20)
    level_db = rng.uniform(-40, -30) if rng.random() < 0.15 else rng.uniform(-22, -1)
    peak = float(np.max(np.abs(y))) or 1.0
    return np.clip(y / peak * 10 ** (level_db / 20), -1.0, 1.0)


# -- shared helpers ----------------------------------------------------------------------


def _shape_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    """White noise band-limited to [lo, hi] Hz in the frequency domain (no scipy)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    spec[(freqs < lo) | (freqs > hi)] = 0
    out = np.fft.irfft(spec, n)
    return out / (np.max(np.abs(out)) + 1e-12)


def _add(buf: np.ndarray, x: np.ndarray, start: int) -> None:
    """Mix ``x`` into ``buf`` at ``start``, cut at the end of the buffer."""
    if start >= len(buf):
        return
    end = min(len(buf), start + len(x))
    buf[start:end] += x[: end - start]


def _with_noise(rng: np.random.Generator, y: np.ndarray, snr_db: float, sr: int) -> np.ndarray:
    noise = _shape_noise(rng, len(y), sr, 60, sr / 2 * rng.uniform(0.4, 1.0))
    power = np.mean(y**2) / 10 ** (snr_db / 10)
    return y + noise * np.sqrt(power / (np.mean(noise**2) + 1e-12))


# -- music -------------------------------------------------------------------------------


def _adsr(n: int, sr: int, attack: float, decay: float, sustain: float) -> np.ndarray:
    """Attack-decay-sustain-release envelope over ``n`` samples (release: last 20%)."""
    t = np.arange(n) / sr
    env = np.minimum(t / attack, 1.0)
    env = np.where(t > attack, 1 - (1 - sustain) * np.minimum((t - attack) / decay, 1), env)
    release = max(1, n // 5)
    env[-release:] *= np.linspace(1, 0, release)
    return env


def _note(freq: float, n: int, sr: int, timbre: dict, vibrato: float = 0.0) -> np.ndarray:
    """A harmonic tone: partials with a spectral tilt, optional vibrato, ADSR envelope."""
    t = np.arange(n) / sr
    inst = freq * (1 + vibrato * np.sin(2 * np.pi * timbre["vib_rate"] * t))
    phase = 2 * np.pi * np.cumsum(inst) / sr
    k = np.arange(1, timbre["partials"] + 1)
    k = k[k * freq < sr / 2.2]
    amps = k ** -timbre["tilt"]
    tone = (amps[:, None] * np.sin(k[:, None] * phase[None, :])).sum(axis=0)
    return tone * _adsr(n, sr, timbre["attack"], timbre["decay"], timbre["sustain"])


def _timbre(rng: np.random.Generator, *, bright: bool) -> dict:
    return {
        "partials": int(rng.integers(4, 12) if bright else rng.integers(1, 5)),
        "tilt": float(rng.uniform(0.7, 1.4) if bright else rng.uniform(1.5, 2.5)),
        "attack": float(rng.uniform(0.005, 0.08)),
        "decay": float(rng.uniform(0.05, 0.4)),
        "sustain": float(rng.uniform(0.3, 0.9)),
        "vib_rate": float(rng.uniform(4.5, 6.5)),
    }


def _midi_hz(m: float) -> float:
    return 440.0 * 2 ** ((m - 69) / 12)


def _drums(
    rng: np.random.Generator, n: int, sr: int, beat: float, *, floor: bool | None = None
) -> np.ndarray:
    """Kick on beats 1 and 3 (every beat when ``floor``: four on the floor; by default 30%
    of kits), snare on 2 and 4, hi-hat on eighths, with small timing drift."""
    out = np.zeros(n)
    t = np.arange(int(0.25 * sr)) / sr
    kick = np.sin(2 * np.pi * np.cumsum(50 + 100 * np.exp(-t / 0.03)) / sr) * np.exp(-t / 0.12)
    snare = _shape_noise(rng, len(t), sr, 1000, 6000) * np.exp(-t / 0.06)
    snare += 0.4 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.05)
    hat = _shape_noise(rng, len(t), sr, 6000, sr / 2)[: len(t) // 3] * np.exp(
        -t[: len(t) // 3] / 0.02
    )
    four_on_floor = rng.random() < 0.3 if floor is None else floor
    for b in range(int(n / sr / beat) + 1):
        at = int((b * beat + rng.normal(0, 0.004)) * sr) if b else 0
        if b % 2 == 0 or four_on_floor:
            _add(out, kick, at)
        if b % 2 == 1:
            _add(out, 0.6 * snare, at)
        _add(out, 0.25 * hat, at)
        _add(out, 0.18 * hat, at + int(beat / 2 * sr))
    return out


def _melody(rng: np.random.Generator, n: int, sr: int, key: int, scale: np.ndarray,
            beat: float, *, sparse: bool) -> np.ndarray:  # fmt: skip
    """A scale-bound random walk; sparse melodies rest often and sing with vibrato."""
    out, timbre = np.zeros(n), _timbre(rng, bright=not sparse)
    vibrato = rng.uniform(0.006, 0.02) if sparse else 0.0
    at, degree = 0, int(rng.integers(0, 7))
    while at < n:
        length = int(beat * sr * rng.choice([0.5, 1, 1, 2] if not sparse else [1, 2, 3]))
        degree = int(np.clip(degree + rng.integers(-2, 3), -3, 10))
        if not sparse or rng.random() > 0.35:
            midi = key + 12 + 12 * (degree // 7) + scale[degree % 7]
            _add(out, _note(_midi_hz(midi), length, sr, timbre, vibrato), at)
        at += length
    return out


def _chords(rng: np.random.Generator, n: int, sr: int, key: int, scale: np.ndarray,
            beat: float) -> np.ndarray:  # fmt: skip
    """Triads on I, IV, V and vi, one per bar of 2 or 4 beats."""
    out, timbre = np.zeros(n), _timbre(rng, bright=True)
    bar = int(beat * sr * rng.choice([2, 4]))
    for at in range(0, n, bar):
        root = int(rng.choice([0, 3, 4, 5]))
        for step in (0, 2, 4):
            d = root + step
            midi = key + 12 * (d // 7) + scale[d % 7]
            _add(out, 0.5 * _note(_midi_hz(midi), bar, sr, timbre), at)
    return out


def synth_music(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """One music clip of ``n`` samples: a band, a chord pad with melody, or a sparse solo."""
    style = rng.choice(["band", "band", "pad", "solo"])
    beat = 60.0 / rng.uniform(70, 160)
    key = int(rng.integers(45, 58))
    scale = MAJOR if rng.random() < 0.6 else MINOR
    y = _melody(rng, n, sr, key, scale, beat, sparse=style == "solo")
    if style != "solo":
        y = y + rng.uniform(0.4, 1.0) * _chords(rng, n, sr, key, scale, beat)
    if style == "band":
        y = y / (np.max(np.abs(y)) + 1e-12) + rng.uniform(0.5, 1.2) * _drums(rng, n, sr, beat)
    if rng.random() < 0.3:
        y = _with_noise(rng, y, rng.uniform(6, 25), sr)
    return y


# -- speech ------------------------------------------------------------------------------


def _glottal(f0: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Rosenberg glottal pulses at the instantaneous ``f0``, differentiated (lip radiation),
    with per-period amplitude shimmer and aspiration noise."""
    cycles = np.cumsum(f0) / sr
    p = cycles % 1.0
    open_, close = 0.4, 0.16
    g = np.where(p < open_, 0.5 * (1 - np.cos(np.pi * p / open_)), 0.0)
    closing = (p >= open_) & (p < open_ + close)
    g = np.where(closing, np.cos(np.pi * (p - open_) / (2 * close)), g)
    shimmer = 1 + 0.08 * rng.standard_normal(int(cycles[-1]) + 2)
    g = g * shimmer[cycles.astype(int)]
    return np.diff(g, prepend=0.0) + 0.01 * rng.standard_normal(len(g))


def _formants(x: np.ndarray, sr: int, freqs: np.ndarray) -> np.ndarray:
    """Cascade of 2-pole resonators (Klatt, unity gain at DC), applied as a spectrum product."""
    size = 1 << int(np.ceil(np.log2(len(x) + 1024)))
    z = np.exp(-2j * np.pi * np.fft.rfftfreq(size))
    h = np.ones_like(z)
    for f, bw in zip(freqs, (70.0, 110.0, 170.0), strict=True):
        r = np.exp(-np.pi * bw / sr)
        b, c = 2 * r * np.cos(2 * np.pi * f / sr), -(r**2)
        h *= (1 - b - c) / (1 - b * z - c * z**2)
    return np.fft.irfft(np.fft.rfft(x, size) * h, size)[: len(x)]


def _phrase(rng: np.random.Generator, sr: int, speaker: tuple, rate: float) -> np.ndarray:
    """3-8 syllables on one declining pitch contour; some start with a fricative."""
    lengths = (sr / rate * rng.uniform(0.7, 1.3, int(rng.integers(3, 9)))).astype(int)
    total = int(lengths.sum())
    lo, hi, scale = speaker
    start = rng.uniform(lo + 0.3 * (hi - lo), hi)
    f0 = np.linspace(start, max(lo, start * 0.75), total)
    f0 *= 1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * np.arange(total) / sr)
    f0 *= 1 + 0.01 * np.repeat(rng.standard_normal(total // 64 + 1), 64)[:total]  # jitter
    source, out, at = _glottal(f0, sr, rng), np.zeros(total), 0
    for length in lengths:
        seg = source[at : at + length]
        va, vb = VOWELS[rng.integers(0, len(VOWELS), 2)] * scale
        fade = np.linspace(0, 1, length)
        vowel = (1 - fade) * _formants(seg, sr, va) + fade * _formants(seg, sr, vb)
        env = np.sin(np.pi * np.linspace(0, 1, length)) ** 0.7 * rng.uniform(0.5, 1)
        out[at : at + length] = vowel * env
        if rng.random() < 0.4:
            m = int(sr * rng.uniform(0.04, 0.12))
            hiss = _shape_noise(rng, m, sr, rng.uniform(2500, 4500), sr / 2) * np.hanning(m)
            _add(out, 0.3 * rng.uniform(0.3, 1) * hiss * np.max(np.abs(vowel)), at)
        at += length
    return out


def synth_speech(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """One speech clip of ``n`` samples: phrases and pauses of one synthetic speaker."""
    speaker = SPEAKERS[int(rng.integers(0, len(SPEAKERS)))]
    rate = rng.uniform(3, 6)
    out, at = np.zeros(n), int(sr * rng.uniform(0, 0.3))
    while at < n:
        phrase = _phrase(rng, sr, speaker, rate)
        _add(out, phrase, at)
        at += len(phrase) + int(sr * rng.uniform(0.1, 0.6))
    if rng.random() < 0.3:
        # A tonal background (hum or a soft pad) makes "is there a pitch?" ambiguous.
        hum = _note(rng.choice([50.0, 60.0, 110.0, 220.0]), n, sr, _timbre(rng, bright=True))
        out = out + hum * np.sqrt(np.mean(out**2) / np.mean(hum**2)) * rng.uniform(0.2, 0.7)
    if rng.random() < 0.3:
        out = _with_noise(rng, out, rng.uniform(8, 25), sr)
    return out
