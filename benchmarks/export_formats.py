"""Export formats of pruned tickets: file bytes and CPU inference latency.

For LeNet-300-100, ResNet-20 and MobileNetV2 (freshly initialized, seed 0),
magnitude-pruned (``--scope global``, or ``layerwise``) to each sparsity in turn
(nested, 0% = dense), every
format of ``keras_lottery.export`` is written and measured:

- bytes: ``saved_model`` (folder), ``keras``, ``litert`` (float32),
  ``litert_sparse`` (``EXPERIMENTAL_SPARSITY``), ``onnx``, ``sparse_npz``, next
  to ``dense_bytes`` (every variable as float32);
- latency of ``saved_model`` (``tf.saved_model.load(...).serve``), ``litert``,
  ``litert_sparse`` (LiteRT interpreter) and ``onnx`` (onnxruntime), batch 1
  and batch 32, one thread each: every (format, sparsity, batch) runner is timed
  once per repeat in a shuffled order (``_harness.interleaved``), a runner's
  call repeats the inference until ``--target-ms`` have passed (calibrated
  once); reported are the median ms per inference and the paired median ratio
  to the dense (0%) model of the same format and batch, all in one process.

``--noise-floor`` times a second export of the dense model as a variant: its
ratio to the dense model is the noise of the measurement. ``--structured`` adds
LeNet-300-100 with structured masks: 1x4 blocks along each kernel's input axis
(the pattern TFLite's sparse fully-connected kernel runs without densifying) at
90%, and 2:4 (two of every four consecutive input weights) at 50%, timed
against the same dense baseline.

    TF_NUM_INTRAOP_THREADS=1 python benchmarks/export_formats.py --repeats 5 \\
        --structured --json benchmarks/results/export_formats.json
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import _harness  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_lottery import export, models, pruning  # noqa: E402
from keras_lottery.export import litert  # noqa: E402
from keras_lottery.export import onnx as kl_onnx  # noqa: E402
from keras_lottery.export._files import output_bytes  # noqa: E402
from keras_lottery.rewind import capture_state  # noqa: E402
from keras_lottery.training import assign_all  # noqa: E402

MODELS = ("lenet_300_100", "cifar_resnet_20", "mobilenet_v2")
SPARSITIES = (0.0, 0.5, 0.9, 0.98)
FILES = {
    "saved_model": ("saved_model", "saved_model", {}),
    "keras": ("keras", "model.keras", {}),
    "litert": ("litert", "dense.tflite", {}),
    "litert_sparse": ("litert", "sparse.tflite", {"sparse": True}),
    "onnx": ("onnx", "model.onnx", {}),
    "sparse_npz": ("sparse-npz", "sparse.npz", {}),
}
TIMED = ("saved_model", "litert", "litert_sparse", "onnx")
BATCHES = (1, 32)


def build(name: str, mobilenet_input: int):
    keras.utils.set_random_seed(0)
    if name == "mobilenet_v2":
        shape = (mobilenet_input, mobilenet_input, 3)
        return models.get(name, num_classes=1000, input_shape=shape)
    return models.get(name)


def structured_masks(model, pattern: str) -> dict:
    """1x4 blocks (90% of the blocks pruned, random) or 2:4 along each Dense
    kernel's input axis; the kept entries are chosen at random (seed 0)."""
    rng = np.random.default_rng(0)
    masks = {}
    for layer in pruning.masked_layers(model):
        rows, cols = layer.get_mask().shape
        if pattern == "block1x4":
            keep = rng.random((rows // 4, cols)) >= 0.9
            masks[layer.name] = np.repeat(keep, 4, axis=0)
        else:  # 2:4: two random survivors in every group of four inputs
            scores = rng.random((rows // 4, 4, cols))
            ranks = scores.argsort(axis=1).argsort(axis=1)
            masks[layer.name] = (ranks >= 2).reshape(rows, cols)
    return masks


def write_all(model, folder: str) -> dict:
    sizes = {"dense_bytes": export.size_report(model).dense_bytes}
    for key, (fmt, name, options) in FILES.items():
        path = os.path.join(folder, name)
        start = time.perf_counter()
        export.export(model, path, format=fmt, overwrite=True, **options)
        sizes[f"{key}_bytes"] = output_bytes(path)
        sizes[f"{key}_seconds"] = round(time.perf_counter() - start, 2)
    return sizes


def runner(fmt: str, folder: str, x: np.ndarray):
    """A callable doing one inference of ``x`` in ``fmt``, and its output."""
    if fmt == "saved_model":
        loaded = tf.saved_model.load(os.path.join(folder, "saved_model"))
        tensor = tf.constant(x)

        def run():  # holds `loaded`: its variables die with it
            return loaded.serve(tensor)

        return run, lambda: run().numpy()
    if fmt == "onnx":
        session = kl_onnx.onnx_session(os.path.join(folder, "model.onnx"), threads=1)
        feed = {kl_onnx.INPUT_NAME: x}

        def run():
            return session.run(None, feed)

        return run, lambda: run()[0]
    name = "dense.tflite" if fmt == "litert" else "sparse.tflite"
    interpreter = litert.load_interpreter(os.path.join(folder, name), num_threads=1)
    litert.predict_litert(interpreter, x)  # resizes and allocates once
    (detail,) = interpreter.get_input_details()
    out_index = interpreter.get_output_details()[0]["index"]

    def run():
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()

    def output():
        run()
        return interpreter.get_tensor(out_index)

    return run, output


def op_counts(path: str) -> dict:
    """``{op name: count}`` of a ``.tflite`` file (``DENSIFY`` marks kernels
    stored sparsely but expanded to dense when the interpreter is prepared)."""
    interpreter = litert.load_interpreter(path)
    counts = {}
    for op in interpreter._get_ops_details():  # no public op listing
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return counts


def repeated(run, target_s: float):
    """``run`` repeated ``n`` times per call, ``n`` calibrated to ``target_s``;
    the call returns ``n`` (the harness divides by it)."""
    run()
    start = time.perf_counter()
    run()
    once = max(time.perf_counter() - start, 1e-6)
    n = max(1, math.ceil(target_s / once))

    def call():
        for _ in range(n):
            run()
        return n

    return call


def measure_model(name, variants, args) -> dict:
    """Bytes of every variant and latency of every (format, variant, batch)."""
    rows, runs = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-export-") as scratch:
        model = build(name, args.mobilenet_input)
        initial = capture_state(model)
        shape = tuple(model.inputs[0].shape[1:])
        rng = np.random.default_rng(0)
        inputs = {b: rng.random((b, *shape)).astype("float32") for b in BATCHES}
        for label, apply in variants:
            apply(model, initial)
            folder = os.path.join(scratch, label)
            row = {"variant": label, **write_all(model, folder)}
            row["sparsity"] = round(_sparsity(model), 4)
            row["litert_sparse_ops"] = op_counts(os.path.join(folder, "sparse.tflite"))
            expected = model.predict(inputs[1], verbose=0)
            for fmt in TIMED:
                for batch in BATCHES:
                    run, output = runner(fmt, folder, inputs[batch])
                    if batch == 1:
                        row[f"{fmt}_max_abs_diff"] = float(
                            np.abs(output() - expected).max()
                        )
                    target = args.target_ms / 1000
                    runs[f"{fmt}|{label}|{batch}"] = repeated(run, target)
            rows.append(row)
            print(f"# {name} {label}: files written and runners ready", flush=True)
        times = _harness.interleaved(runs, repeats=args.repeats, seed=0)
    latency = {}
    for fmt in TIMED:
        for batch in BATCHES:
            group = {k: v for k, v in times.items() if k.startswith(f"{fmt}|")}
            group = {k: v for k, v in group.items() if k.endswith(f"|{batch}")}
            summary = _harness.summarize(
                group, baseline=f"{fmt}|{rows[0]['variant']}|{batch}"
            )
            for key, entry in summary.items():
                latency[key] = {
                    "median_ms": entry["wall"]["median"],
                    "ratio_to_dense": entry["wall"]["ratio_paired_median"],
                }
    return {"model": name, "input_shape": list(shape), "rows": rows, "latency": latency}


def _sparsity(model) -> float:
    return pruning.sparsity_report(model).sparsity


def _pruner(sparsity: float, scope: str):
    def apply(model, initial):  # nested: prunes further what is already pruned
        if sparsity > 0:
            pruning.prune_to_density(model, 1.0 - sparsity, scope=scope)

    return apply


def _dense():
    def apply(model, initial):
        assign_all(model, initial)

    return apply


def _structured(pattern: str):
    def apply(model, initial):  # from the dense initial weights
        assign_all(model, initial)
        pruning.set_masks(model, structured_masks(model, pattern))

    return apply


def print_model(result: dict) -> None:
    name, rows = result["model"], result["rows"]
    print(f"\n## {name} (input {tuple(result['input_shape'])})\n")
    keys = ["dense_bytes"] + [f"{k}_bytes" for k in FILES]
    print("| variant | sparsity | " + " | ".join(k[:-6] for k in keys) + " |")
    print("| --- | ---: |" + " ---: |" * len(keys))
    for row in rows:
        dense = row["dense_bytes"]
        cells = [f"{dense:,}"] + [f"{row[k] / dense:.3f}" for k in keys[1:]]
        print(
            f"| {row['variant']} | {row['sparsity']:.2%} | " + " | ".join(cells) + " |"
        )
    print("\n(bytes: dense weights, then each file / dense weights)\n")
    for row in rows:
        ops = row["litert_sparse_ops"]
        print(f"- {row['variant']}: litert_sparse ops {ops}")
    print()
    cols = [(f, b) for b in BATCHES for f in TIMED]
    print("| variant | " + " | ".join(f"{f} b{b}" for f, b in cols) + " |")
    print("| --- |" + " ---: |" * len(cols))
    for row in rows:
        cells = []
        for f, b in cols:
            entry = result["latency"][f"{f}|{row['variant']}|{b}"]
            cells.append(f"{entry['median_ms']:.3g} ms ({entry['ratio_to_dense']:.2f})")
        print(f"| {row['variant']} | " + " | ".join(cells) + " |")
    print("\n(median ms per inference, (paired ratio to the dense model, same format))")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--sparsities", default=",".join(map(str, SPARSITIES)))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target-ms", type=float, default=40.0)
    parser.add_argument("--mobilenet-input", type=int, default=128)
    parser.add_argument(
        "--scope",
        choices=["global", "layerwise"],
        default="global",
        help="magnitude pruning over all layers together, or each layer alike",
    )
    parser.add_argument("--structured", action="store_true")
    parser.add_argument(
        "--noise-floor",
        action="store_true",
        help="also time a second copy of the dense model (its ratio is noise)",
    )
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already running (e.g. under pytest)
        pass
    info = _harness.machine_info(
        tensorflow=tf.__version__,
        keras=keras.__version__,
        load_before=_harness.load_average(),
    )
    _harness.header("export formats", info)
    sparsities = [float(s) for s in args.sparsities.split(",")]
    results = []
    start = time.perf_counter()
    for name in args.models.split(","):
        variants = [(f"{s:.0%}", _pruner(s, args.scope)) for s in sparsities]
        if args.noise_floor:  # the dense model again: ratios of pure noise
            variants.insert(1, ("0% again", _dense()))
        if args.structured and name == "lenet_300_100":
            variants += [("block1x4 90%", _structured("block1x4"))]
            variants += [("2:4 50%", _structured("2:4"))]
        results.append(measure_model(name, variants, args))
        print_model(results[-1])
    info["load_after"] = _harness.load_average()
    info["seconds"] = round(time.perf_counter() - start, 1)
    print(
        f"\n# {info['seconds']} s, load {info['load_before']} -> {info['load_after']}"
    )
    _harness.write_json(
        args.json, {"info": info, "args": vars(args), "results": results}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
