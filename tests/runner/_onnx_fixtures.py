"""Tiny ONNX embedding models built with ``onnx.helper``, and their numpy twins.

The model frames the waveform into non-overlapping frames of ``frame`` samples, projects each
frame with a fixed seeded matrix (a strided Conv), takes the absolute value and averages the
frames: ``reference`` computes exactly that in numpy. Variants: a ``[batch, 1, samples]``
input, a ``[batch, frames, dim]`` output (the averaging left to the extractor), and a model
whose output has no embedding axis (the wrong signature).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["conv_embedder", "reference", "weights", "wrong_signature"]

OPSET = 17


def weights(dim: int, frame: int, seed: int = 0) -> np.ndarray:
    """The projection ``(dim, 1, frame)`` float32 of :func:`conv_embedder` with ``seed``."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((dim, 1, frame)) / np.sqrt(frame)).astype(np.float32)


def conv_embedder(
    path: Path,
    *,
    dim: int = 8,
    frame: int = 400,
    seed: int = 0,
    channel_axis: bool = False,
    frames_axis: bool = False,
) -> Path:
    """Write the framed-projection model to ``path``; returns ``path``."""
    shape = ["batch", 1, "samples"] if channel_axis else ["batch", "samples"]
    x = helper.make_tensor_value_info("waveform", TensorProto.FLOAT, shape)
    nodes, inits = [], [numpy_helper.from_array(weights(dim, frame, seed), "W")]
    source = "waveform"
    if not channel_axis:
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
        nodes.append(helper.make_node("Unsqueeze", ["waveform", "axis1"], ["x3"]))
        source = "x3"
    nodes.append(helper.make_node("Conv", [source, "W"], ["proj"], strides=[frame]))
    nodes.append(helper.make_node("Abs", ["proj"], ["act"]))  # (batch, dim, frames)
    if frames_axis:
        nodes.append(helper.make_node("Transpose", ["act"], ["embedding"], perm=[0, 2, 1]))
        out_shape = ["batch", "frames", dim]
    else:
        nodes.append(helper.make_node("ReduceMean", ["act"], ["embedding"], axes=[2], keepdims=0))
        out_shape = ["batch", dim]
    y = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, out_shape)
    graph = helper.make_graph(nodes, "tiny_embedder", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by every onnxruntime of the last years
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def wrong_signature(path: Path) -> Path:
    """A model whose output is ``[batch]``: one number per clip, no embedding axis."""
    x = helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "samples"])
    y = helper.make_tensor_value_info("loudness", TensorProto.FLOAT, ["batch"])
    node = helper.make_node("ReduceMean", ["waveform"], ["loudness"], axes=[1], keepdims=0)
    graph = helper.make_graph([node], "not_an_embedder", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def reference(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """numpy twin of :func:`conv_embedder`: ``(frames, dim)`` projections before averaging."""
    frame = w.shape[-1]
    frames = y[: len(y) // frame * frame].reshape(-1, frame).astype(np.float64)
    return np.abs(frames @ w[:, 0, :].T.astype(np.float64))
