"""Compare Keras 3 CPU backends (JAX, TensorFlow, PyTorch) on a small dense network.

Usage::

    python benchmarks/bench_keras_backends.py \\
        --python jax=/tmp/kbench/jax/bin/python \\
        --python tensorflow=/tmp/kbench/tensorflow/bin/python \\
        --python torch=/tmp/kbench/torch/bin/python

Without ``--python`` every ``/tmp/kbench/<backend>/bin/python`` is used (the directory name
is the backend). Each backend lives in its own virtual environment (keras + numpy + the
backend), so the parent process needs only the standard library: it starts this same file
with ``--child`` under each interpreter, one fresh process per backend per round, and the
rounds interleave the backends (the order rotates every round) so that load from other jobs
on a shared machine falls on all of them alike.

Each child, with ``KERAS_BACKEND`` set and threads pinned (see ``pin_threads``):

* times ``import keras`` (which imports the backend);
* builds the net: Dense(64, relu) -> Dropout(0.2) -> Dense(64, relu) -> Dropout(0.2) ->
  Dense(10, softmax), Adam(1e-3), sparse categorical cross-entropy, on a seeded synthetic
  table shaped like the GTZAN feature table (1,000 x 57 float32, 10 classes);
* first fit: build + compile + ``fit`` for ``--epochs`` epochs, batch ``--batch-size``,
  shuffle, no validation, no early stopping (includes tracing / XLA compilation);
* ``--repeats`` warm fits of the same model (already-compiled train function), each
  ``--epochs`` epochs: steady-state seconds per epoch = fit wall time / epochs (also the
  process CPU time);
* predict on the 1,000 rows (first call, then warm calls, batch ``--batch-size``);
* optionally the same warm fit at other batch sizes (``--sweep-batch-sizes``; one untimed
  1-epoch warm-up at each size first, since a new batch shape retraces under JAX/TF) to see
  whether an epoch costs per step (dispatch overhead) or per row (arithmetic);
* optionally (``--profile``) one more warm fit under cProfile: Python function calls per
  training step and the functions with the most own time.

Figures are printed and written as Markdown to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

MARK = "@@KBENCH@@"
BACKENDS = ("jax", "tensorflow", "torch")
ROWS, FEATURES, CLASSES = 1000, 57, 10


# --------------------------------------------------------------------------------- child


def pin_threads(backend: str, threads: int, pin_cpus: bool) -> dict:
    """Same CPU affinity and thread-pool sizes for every backend; set before any import."""
    settings: dict = {}
    if pin_cpus:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    settings["sched_setaffinity"] = sorted(os.sched_getaffinity(0))
    env = {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": str(threads),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    if backend == "jax":
        env["JAX_PLATFORMS"] = "cpu"
        if threads == 1:
            env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.environ.update(env)
    settings["env"] = {k: v for k, v in env.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return settings


def backend_threads_after_import(backend: str, threads: int) -> dict:
    """Apply the backend's own thread API where it has one and report what it says."""
    out: dict = {}
    if backend == "tensorflow":
        import tensorflow as tf

        for name, setter in (
            ("intra_op", tf.config.threading.set_intra_op_parallelism_threads),
            ("inter_op", tf.config.threading.set_inter_op_parallelism_threads),
        ):
            try:
                setter(threads)
            except RuntimeError as exc:  # runtime already initialised: env vars apply
                out[f"{name}_set_error"] = str(exc)[:80]
        out["tf_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        out["tf_inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
        out["tensorflow"] = tf.__version__
    elif backend == "torch":
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError as exc:
            out["interop_set_error"] = str(exc)[:80]
        out["torch_num_threads"] = torch.get_num_threads()
        out["torch_num_interop_threads"] = torch.get_num_interop_threads()
        out["torch"] = torch.__version__
    elif backend == "jax":
        import jax
        import jaxlib

        out["jax"] = jax.__version__
        out["jaxlib"] = jaxlib.__version__
        out["jax_devices"] = [str(d) for d in jax.devices()]
        out["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "")
    return out


def synthetic_table(seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, (CLASSES, FEATURES))
    y = rng.integers(0, CLASSES, ROWS)
    X = centers[y] + rng.normal(0.0, 1.5, (ROWS, FEATURES))
    X = (X - X.mean(0)) / X.std(0)
    return X.astype("float32"), y.astype("int32")


def run_child(args: argparse.Namespace) -> dict:
    backend = args.child
    os.environ["KERAS_BACKEND"] = backend
    result: dict = {
        "backend": backend,
        "pinning": pin_threads(backend, args.threads, args.pin_cpus),
    }

    t0 = time.perf_counter()
    import keras

    result["import_s"] = time.perf_counter() - t0
    import numpy as np

    result["versions"] = {"keras": keras.__version__, "numpy": np.__version__}
    result["versions"].update(backend_threads_after_import(backend, args.threads))
    result["keras_backend"] = keras.backend.backend()

    X, y = synthetic_table(args.seed)

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._t)

    def build():
        keras.utils.set_random_seed(args.seed)
        inputs = keras.Input(shape=(FEATURES,))
        h = inputs
        for _ in range(2):
            h = keras.layers.Dense(args.units, activation="relu")(h)
            h = keras.layers.Dropout(0.2)(h)
        outputs = keras.layers.Dense(CLASSES, activation="softmax")(h)
        model = keras.Model(inputs, outputs)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def timed_fit(model, epochs, batch_size):
        timer = EpochTimer()
        timer.times = []
        c0, w0 = time.process_time(), time.perf_counter()
        hist = model.fit(
            X,
            y,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=True,
            verbose=0,
            callbacks=[timer],
        )
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        return wall, cpu, timer.times, hist.history

    steps = -(-ROWS // args.batch_size)
    t0 = time.perf_counter()
    model = build()
    result["build_compile_s"] = time.perf_counter() - t0
    wall, cpu, epoch_times, hist = timed_fit(model, args.epochs, args.batch_size)
    result["jit_compile"] = str(getattr(model, "jit_compile", None))
    result["first_fit_s"] = time.perf_counter() - t0  # build + compile + fit
    result["first_fit_epoch1_s"] = epoch_times[0]
    result["first_fit_later_epochs_median_s"] = statistics.median(epoch_times[1:])
    result["first_fit_final_loss"] = hist["loss"][-1]
    result["first_fit_final_acc"] = hist["accuracy"][-1]
    result["steps_per_epoch"] = steps

    warm = []
    for _ in range(args.repeats):
        wall, cpu, epoch_times, hist = timed_fit(model, args.epochs, args.batch_size)
        warm.append(
            {
                "epoch_s": wall / args.epochs,
                "cpu_epoch_s": cpu / args.epochs,
                "epoch_median_s": statistics.median(epoch_times),
            }
        )
    result["warm"] = warm
    result["final_loss"] = hist["loss"][-1]
    result["final_acc"] = hist["accuracy"][-1]

    t = time.perf_counter()
    model.predict(X, batch_size=args.batch_size, verbose=0)
    result["predict_first_s"] = time.perf_counter() - t
    pred = []
    for _ in range(max(3, args.repeats)):
        t = time.perf_counter()
        model.predict(X, batch_size=args.batch_size, verbose=0)
        pred.append(time.perf_counter() - t)
    result["predict_warm_s"] = statistics.median(pred)

    sweep = {}
    for bs in args.sweep_batch_sizes:
        timed_fit(model, 1, bs)  # warm-up: a new batch shape retraces under JAX/TF
        e = max(1, args.sweep_epochs)
        wall, cpu, epoch_times, _ = timed_fit(model, e, bs)
        n_steps = -(-ROWS // bs)
        sweep[str(bs)] = {
            "steps": n_steps,
            "epoch_s": wall / e,
            "step_ms": 1000 * wall / e / n_steps,
            "cpu_epoch_s": cpu / e,
        }
    result["sweep"] = sweep

    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        e = max(1, args.profile_epochs)
        t = time.perf_counter()
        prof.enable()
        model.fit(X, y, epochs=e, batch_size=args.batch_size, shuffle=True, verbose=0)
        prof.disable()
        wall = time.perf_counter() - t
        st = pstats.Stats(prof)
        total_calls = st.total_calls  # type: ignore[attr-defined]
        prim_tt = sum(v[2] for v in st.stats.values())  # type: ignore[attr-defined]
        builtin_tt = sum(
            v[2]
            for k, v in st.stats.items()  # type: ignore[attr-defined]
            if k[0] == "~" or k[0].startswith("<")
        )
        rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:10]  # type: ignore[attr-defined]
        result["profile"] = {
            "epochs": e,
            "steps": e * steps,
            "wall_s_under_profiler": wall,
            "python_calls_per_step": total_calls / (e * steps),
            "tottime_s": prim_tt,
            "tottime_in_builtins_s": builtin_tt,
            "top_tottime": [
                {"func": f"{Path(k[0]).name}:{k[1]}({k[2]})", "ncalls": v[1], "tottime_s": v[2]}
                for k, v in rows
            ],
        }
    return result


# -------------------------------------------------------------------------------- parent


def site_packages_mb(python: str) -> tuple[float | None, list[tuple[str, float]]]:
    """Size of the venv's site-packages (like du -sm) and its five largest entries."""
    try:
        sp = subprocess.run(
            [python, "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None, []

    def du(path: str) -> int:
        total = 0
        for root, _dirs, files in os.walk(path):
            for f in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(root, f)).st_blocks * 512
        return total

    entries = []
    for name in os.listdir(sp):
        p = os.path.join(sp, name)
        size = du(p) if os.path.isdir(p) else os.lstat(p).st_blocks * 512
        entries.append((name, size / 2**20))
    entries.sort(key=lambda e: -e[1])
    return sum(e[1] for e in entries), entries[:5]


def discover(specs: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--python wants BACKEND=PATH, got {spec!r}")
        found[name] = path
    if not found:
        for path in sorted(glob.glob("/tmp/kbench/*/bin/python")):
            name = Path(path).parents[1].name
            if name in BACKENDS:
                found[name] = path
    if not found:
        raise SystemExit("no interpreters: pass --python BACKEND=PATH")
    return {b: found[b] for b in BACKENDS if b in found} | {
        b: p for b, p in found.items() if b not in BACKENDS
    }


def child_argv(args: argparse.Namespace, backend: str) -> list[str]:
    argv = [
        __file__,
        "--child",
        backend,
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--repeats",
        str(args.repeats),
        "--threads",
        str(args.threads),
        *(["--pin-cpus"] if args.pin_cpus else []),
        "--units",
        str(args.units),
        "--seed",
        str(args.seed),
        "--sweep-epochs",
        str(args.sweep_epochs),
        "--profile-epochs",
        str(args.profile_epochs),
    ]
    if args.sweep_batch_sizes:
        argv += ["--sweep-batch-sizes", ",".join(map(str, args.sweep_batch_sizes))]
    return argv


def run_one(python: str, argv: list[str], profile: bool) -> dict:
    cmd = [python, *argv] + (["--profile"] if profile else [])
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            res = json.loads(line[len(MARK) :])
            res["process_wall_s"] = wall
            return res
    return {"error": f"rc={proc.returncode}: {proc.stderr.strip()[-1500:]}"}


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summarize(backend: str, runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r]
    warm = [w for r in ok for w in r["warm"]]
    return {
        "backend": backend,
        "n_processes": len(ok),
        "n_warm_fits": len(warm),
        "import_s": med([r["import_s"] for r in ok]),
        "first_fit_s": med([r["first_fit_s"] for r in ok]),
        "first_epoch_s": med([r["first_fit_epoch1_s"] for r in ok]),
        "epoch_s": med([w["epoch_s"] for w in warm]),
        "epoch_min_s": min((w["epoch_s"] for w in warm), default=float("nan")),
        "epoch_max_s": max((w["epoch_s"] for w in warm), default=float("nan")),
        "cpu_epoch_s": med([w["cpu_epoch_s"] for w in warm]),
        "predict_first_s": med([r["predict_first_s"] for r in ok]),
        "predict_s": med([r["predict_warm_s"] for r in ok]),
        "final_loss": med([r["final_loss"] for r in ok]),
        "final_acc": med([r["final_acc"] for r in ok]),
        "process_wall_s": med([r["process_wall_s"] for r in ok]),
        "errors": [r["error"] for r in runs if "error" in r],
    }


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def markdown(args, pythons, summaries, runs, sizes, install_lines, started, ended, total_s):
    lines = ["# Keras 3 CPU backends on a small dense network", ""]
    lines.append("Command: `python " + " ".join(sys.argv) + "`")
    lines.append("")
    first = next((r for rs in runs.values() for r in rs if "error" not in r), {})
    lines.append(
        f"Machine: {platform.machine()} {os.cpu_count()} cores, parent Python "
        f"{platform.python_version()}; 1/5/15-min load average {started} at start, {ended} "
        f"at the end (the machine is shared, so wall-clock figures are noisy). "
        f"Total benchmark time {total_s:.0f} s."
    )
    lines.append("")
    lines.append(
        f"Net: {FEATURES} -> Dense({args.units}, relu) -> Dropout(0.2) -> Dense({args.units}, "
        f"relu) -> Dropout(0.2) -> Dense({CLASSES}, softmax); Adam(1e-3), sparse categorical "
        f"cross-entropy + accuracy metric. Data: seeded synthetic {ROWS} x {FEATURES} float32, "
        f"{CLASSES} classes. {args.epochs} epochs, batch {args.batch_size} "
        f"({first.get('steps_per_epoch', '?')} steps/epoch), shuffle, no validation, no early "
        f"stopping. {args.rounds} rounds; each round starts one fresh process per backend, "
        f"order rotated every round; each process does 1 first fit + {args.repeats} warm fits."
    )
    lines.append("")
    if first:
        p = first["pinning"]
        lines.append(
            f"Threads, the same for every backend: CPU affinity {p['sched_setaffinity']} "
            + ("(`os.sched_setaffinity`, --pin-cpus); " if args.pin_cpus else "(not restricted); ")
            + ", ".join(f"`{k}={v}`" for k, v in p["env"].items())
            + "; plus TensorFlow `tf.config.threading.set_intra/inter_op_parallelism_threads"
            f"({args.threads})`, PyTorch `torch.set_num_threads({args.threads})` / "
            f"`set_num_interop_threads({args.threads})`"
            + (
                "; JAX `XLA_FLAGS=--xla_cpu_multi_thread_eigen=false "
                "intra_op_parallelism_threads=1`"
                if args.threads == 1
                else "; JAX/XLA: no thread-count setting (its pool defaults to the CPU count)"
            )
            + "."
        )
        lines.append("")
    lines.append("| backend | interpreter | versions | keras jit_compile | threads reported |")
    lines.append("| --- | --- | --- | --- | --- |")
    for b, py in pythons.items():
        r = next((x for x in runs[b] if "error" not in x), None)
        if r is None:
            lines.append(f"| {b} | `{py}` | (failed) | | |")
            continue
        v = r["versions"]
        vers = ", ".join(
            f"{k} {v[k]}"
            for k in ("keras", "numpy", "jax", "jaxlib", "tensorflow", "torch")
            if k in v
        )
        thr = ", ".join(
            f"{k}={v[k]}"
            for k in (
                "tf_intra_op",
                "tf_inter_op",
                "torch_num_threads",
                "torch_num_interop_threads",
                "jax_devices",
            )
            if k in v
        )
        lines.append(f"| {b} | `{py}` | {vers} | {r['jit_compile']} | {thr} |")
    lines.append("")

    lines.append("## Timings (medians over processes / warm fits)")
    lines.append("")
    lines.append(
        "| backend | import keras s | first fit s (build+compile+fit) | 1st epoch s | "
        "steady epoch s (median) | min..max | CPU s / epoch | ms / step | predict 1st s | "
        "predict warm s | train loss / acc | n fits |"
    )
    lines.append(
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: |"
    )
    for b in pythons:
        s = summaries[b]
        if not s["n_processes"]:
            lines.append(f"| {b} | failed: {s['errors'][:1]} |" + " |" * 10)
            continue
        steps = first.get("steps_per_epoch", 1)
        lines.append(
            f"| {b} | {s['import_s']:.2f} | {s['first_fit_s']:.2f} | {s['first_epoch_s']:.3f} | "
            f"{s['epoch_s']:.4f} | {s['epoch_min_s']:.4f}..{s['epoch_max_s']:.4f} | "
            f"{s['cpu_epoch_s']:.4f} | {1000 * s['epoch_s'] / steps:.2f} | "
            f"{s['predict_first_s']:.3f} | {s['predict_s']:.4f} | "
            f"{s['final_loss']:.3f} / {s['final_acc']:.3f} | {s['n_warm_fits']} |"
        )
    lines.append("")
    base = summaries.get("jax")
    if base and base["n_processes"]:
        lines.append(
            "Ratios to JAX (steady epoch, first fit, import): "
            + "; ".join(
                f"{b} {summaries[b]['epoch_s'] / base['epoch_s']:.2f}x, "
                f"{summaries[b]['first_fit_s'] / base['first_fit_s']:.2f}x, "
                f"{summaries[b]['import_s'] / base['import_s']:.2f}x"
                for b in pythons
                if summaries[b]["n_processes"]
            )
        )
        lines.append("")
    lines.append("Per process (round order): steady epoch s of each warm fit")
    lines.append("")
    for b in pythons:
        for i, r in enumerate(runs[b]):
            if "error" in r:
                lines.append(f"* {b} #{i}: error {r['error'][-300:]!r}")
            else:
                lines.append(
                    f"* {b} #{i}: import {r['import_s']:.2f} s, "
                    f"first fit {r['first_fit_s']:.2f} s, "
                    "warm " + ", ".join(f"{w['epoch_s']:.4f}" for w in r["warm"])
                )
    lines.append("")

    if args.sweep_batch_sizes:
        lines.append("## Batch-size sweep (warm, same model, after the timings above)")
        lines.append("")
        sizes_ = [str(b) for b in args.sweep_batch_sizes]
        lines.append(
            "| backend | " + " | ".join(f"bs {b}: steps, epoch s, ms/step" for b in sizes_) + " |"
        )
        lines.append("| --- |" + " --- |" * len(sizes_))
        for b in pythons:
            ok = [r for r in runs[b] if "error" not in r and r.get("sweep")]
            if not ok:
                continue
            cells = []
            for bs in sizes_:
                ep = med([r["sweep"][bs]["epoch_s"] for r in ok])
                st = med([r["sweep"][bs]["step_ms"] for r in ok])
                cells.append(f"{ok[0]['sweep'][bs]['steps']}, {ep:.4f}, {st:.2f}")
            lines.append(f"| {b} | " + " | ".join(cells) + " |")
        lines.append("")

    profs = {b: next((r["profile"] for r in runs[b] if "profile" in r), None) for b in pythons}
    if any(profs.values()):
        lines.append(
            f"## cProfile of one warm fit ({args.profile_epochs} epochs, batch {args.batch_size})"
        )
        lines.append("")
        lines.append(
            "| backend | steps | Python function calls / step | wall s under profiler | "
            "top own-time functions |"
        )
        lines.append("| --- | ---: | ---: | ---: | --- |")
        for b, p in profs.items():
            if not p:
                continue
            top = "; ".join(
                f"{t['func']} {t['tottime_s']:.2f}s/{t['ncalls']}" for t in p["top_tottime"][:6]
            )
            lines.append(
                f"| {b} | {p['steps']} | {p['python_calls_per_step']:.0f} | "
                f"{p['wall_s_under_profiler']:.2f} | {top} |"
            )
        lines.append("")

    lines.append("## Install size")
    lines.append("")
    lines.append("| backend | site-packages MiB | largest entries MiB |")
    lines.append("| --- | ---: | --- |")
    for b, (total, top) in sizes.items():
        t = "n/a" if total is None else f"{total:.0f}"
        lines.append(f"| {b} | {t} | " + ", ".join(f"{n} {s:.0f}" for n, s in top) + " |")
    lines.append("")
    if install_lines:
        lines.append(f"Install log (`{args.install_summary}`):")
        lines.append("")
        lines.append("```")
        lines.extend(install_lines)
        lines.append("```")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="BACKEND=PATH",
        help="interpreter of a venv with keras + BACKEND (repeatable); default: "
        "/tmp/kbench/*/bin/python",
    )
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per backend")
    ap.add_argument("--repeats", type=int, default=2, help="warm fits per process")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--units", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="CPUs/threads for every backend")
    ap.add_argument(
        "--pin-cpus",
        action="store_true",
        help="also restrict each child's CPU affinity to the first --threads CPUs",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--sweep-batch-sizes",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[],
        help="comma list, e.g. 8,32,128,512",
    )
    ap.add_argument("--sweep-epochs", type=int, default=5)
    ap.add_argument(
        "--profile",
        action="store_true",
        help="cProfile one warm fit (parent: in the last round only)",
    )
    ap.add_argument("--profile-epochs", type=int, default=3)
    ap.add_argument(
        "--install-summary",
        default="/tmp/kbench/install_summary.txt",
        help="install log to quote in the report, if it exists",
    )
    ap.add_argument("--out", default=str(Path(__file__).with_name("RESULTS_keras_backends.md")))
    ap.add_argument("--json-out", default=None, help="also dump raw child results here")
    ap.add_argument("--child", choices=BACKENDS, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        res = run_child(args)
        print(MARK + json.dumps(res), flush=True)
        return

    pythons = discover(args.python)
    print("interpreters:", pythons, flush=True)
    started, t_start = loadavg(), time.perf_counter()
    runs: dict[str, list[dict]] = {b: [] for b in pythons}
    order = list(pythons)
    for rnd in range(args.rounds):
        rot = order[rnd % len(order) :] + order[: rnd % len(order)]
        for b in rot:
            res = run_one(
                pythons[b], child_argv(args, b), profile=args.profile and rnd == args.rounds - 1
            )
            runs[b].append(res)
            if "error" in res:
                print(f"round {rnd} {b}: ERROR {res['error'][-400:]}", flush=True)
            else:
                print(
                    f"round {rnd} {b}: import {res['import_s']:.2f}s first-fit "
                    f"{res['first_fit_s']:.2f}s warm epoch "
                    + ", ".join(f"{w['epoch_s']:.4f}" for w in res["warm"])
                    + f" predict {res['predict_warm_s']:.4f}s",
                    flush=True,
                )
    total_s = time.perf_counter() - t_start
    ended = loadavg()
    summaries = {b: summarize(b, runs[b]) for b in pythons}
    sizes = {b: site_packages_mb(p) for b, p in pythons.items()}
    install_lines = []
    if args.install_summary and os.path.exists(args.install_summary):
        install_lines = Path(args.install_summary).read_text().splitlines()
    md = markdown(args, pythons, summaries, runs, sizes, install_lines, started, ended, total_s)
    print(md)
    Path(args.out).write_text(md + "\n")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(runs, indent=1))
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
