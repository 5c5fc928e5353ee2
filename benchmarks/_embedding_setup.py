"""The embedding benchmark's inputs: two synthetic ONNX embedders and WAV clips.

See ``benchmarks/bench_embedding.py`` for what the models compute and cost.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import soundfile as sf
from onnx import TensorProto, helper, numpy_helper

__all__ = ["SR_FILE", "build_model", "make_clips"]

SR_FILE = 22050


def _conv(name: str, cin: int, cout: int, k: int, s: int, x: str, nodes: list, inits: list):
    rng = np.random.default_rng(len(inits))
    w = (rng.standard_normal((cout, cin, k)) / np.sqrt(cin * k)).astype(np.float32)
    inits.append(numpy_helper.from_array(w, f"{name}_w"))
    nodes.append(helper.make_node("Conv", [x, f"{name}_w"], [name], strides=[s]))
    return name


def build_model(path: Path, kind: str) -> Path:
    """Write the ``conv``, ``light`` or ``tiny`` embedder (input [batch, samples], output
    [batch, dim]); ``tiny`` is ``light`` with 8 outputs instead of 64."""
    nodes: list = [helper.make_node("Unsqueeze", ["waveform", "axis1"], ["x3"])]
    inits: list = [numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1")]
    if kind == "conv":
        h = _conv("c1", 1, 64, 400, 160, "x3", nodes, inits)
        layers = (("c2", 64, 128), ("c3", 128, 128), ("c4", 128, 256), ("c5", 256, 256))
        for name, cin, cout in layers:
            nodes.append(helper.make_node("Relu", [h], [f"{h}_r"]))
            h = _conv(name, cin, cout, 3, 1, f"{h}_r", nodes, inits)
        nodes.append(helper.make_node("Relu", [h], ["act"]))
        dim = 256
    else:
        dim = 64 if kind == "light" else 8
        h = _conv("c1", 1, dim, 400, 400, "x3", nodes, inits)
        nodes.append(helper.make_node("Abs", [h], ["act"]))
    nodes.append(helper.make_node("ReduceMean", ["act"], ["embedding"], axes=[2], keepdims=0))
    x = helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "samples"])
    y = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim])
    graph = helper.make_graph(nodes, f"bench_{kind}", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def make_clips(folder: Path, clips: int, seconds: float) -> pd.DataFrame:
    """Synthesized clips (a few harmonic tones plus noise, each its own seed) as WAV files."""
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR_FILE)) / SR_FILE
    rows = []
    for i in range(clips):
        rng = np.random.default_rng(i)
        f0 = rng.uniform(100, 400)
        y = sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 5))
        y = y + 0.05 * rng.standard_normal(len(t))
        path = folder / f"clip{i:04d}.wav"
        sf.write(path, y.astype(np.float32), SR_FILE, subtype="PCM_16")
        rows.append({"clip_id": f"c{i}", "path": str(path), "label": "x", "group": None})
    return pd.DataFrame(rows)
