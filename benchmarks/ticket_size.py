"""Memory and storage of masks and tickets: LeNet-300-100, ResNet-20, ResNet-50.

Per model (freshly initialized weights, seed 0):

- ``mask_over_kernel``: bytes of the mask variables / bytes of the kernels they
  mask (bool masks: 1 byte per float32 weight);
- ``masked_over_plain``: bytes of all variables of the masked model / of its
  plain twin (what masking adds to the model's memory).

Then, after global magnitude pruning to 50%, 90% and 98% sparsity (nested:
``prune_to_density`` of all masked layers together), each figure / the dense
bytes (``dense_bytes``: every non-mask variable as float32, what a plain model
ships; ``export.size_report``):

- ``sparse_raw``: bitmask + surviving kernel values + the other variables,
  uncompressed (``export.sparse_arrays``, ``SizeReport.sparse_bytes``);
- ``sparse_npz``: the sparse-npz file ``export.save_sparse`` writes: the same
  arrays deflate-compressed plus JSON metadata with the model config
  (``SizeReport.sparse_file_bytes``; before the export package it was the
  arrays alone, without metadata, ``compressed_bytes``);
- ``ticket_file``: a ``.ticket.npz`` written by ``Ticket.save`` for the pruned
  model's current weights (packed masks + every non-mask variable stored
  densely, zeros included, zlib-compressed, + JSON metadata with the model
  config);
- ``imp_ticket_file``: the same for a ticket as the IMP driver writes it, whose
  weights are the (dense) rewind-point values, pruned positions included: here
  the initial weights, i.e. rewinding to iteration 0;
- ``saved_model`` / ``saved_model_zip`` (LeNet and ResNet-20 unless
  ``--saved-model-all``): the SavedModel folder from ``export_saved_model``
  (dense kernels, zeros stored) and the same folder in a deflate zip.

Random initial values compress about as badly as trained ones (float32 noise);
the zeros and the bitmask are what compress.

    python benchmarks/ticket_size.py --json benchmarks/results/ticket_size.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import _harness  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lottery as kl  # noqa: E402
from keras_lottery import export, models, pruning  # noqa: E402
from keras_lottery.rewind import capture_state  # noqa: E402
from keras_lottery.ticket import Ticket  # noqa: E402

SPARSITIES = (0.5, 0.9, 0.98)


def build(name: str, seed: int):
    keras.utils.set_random_seed(seed)
    if name == "lenet_300_100":
        return models.get("lenet_300_100", num_classes=10)
    if name == "cifar_resnet_20":
        return models.get("cifar_resnet_20", num_classes=10, input_shape=(32, 32, 3))
    if name == "resnet50":
        return kl.prunable(keras.applications.ResNet50(weights=None))
    raise ValueError(name)


def _nbytes(variable) -> int:
    return int(np.prod(variable.shape)) * np.dtype(variable.dtype).itemsize


def memory(model) -> dict:
    layers = pruning.masked_layers(model)
    masks = sum(_nbytes(layer.mask) for layer in layers)
    kernels = sum(_nbytes(layer.raw_kernel) for layer in layers)
    everything = sum(_nbytes(v) for v in model.weights)
    return {
        "mask_bytes": masks,
        "kernel_bytes": kernels,
        "mask_over_kernel": round(masks / kernels, 4),
        "masked_over_plain": round(everything / (everything - masks), 4),
    }


def folder_bytes(path: str) -> int:
    return sum(
        os.path.getsize(os.path.join(root, f))
        for root, _, files in os.walk(path)
        for f in files
    )


def zipped_bytes(path: str, scratch: str) -> int:
    target = os.path.join(scratch, "folder.zip")
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for root, _, files in os.walk(path):
            for f in files:
                full = os.path.join(root, f)
                archive.write(full, os.path.relpath(full, path))
    size = os.path.getsize(target)
    os.remove(target)
    return size


def sizes_at(model, sparsity, scratch, saved_model, rewind_state) -> dict:
    pruning.prune_to_density(model, 1.0 - sparsity, scope="global")
    report = export.size_report(model)
    ticket_path = os.path.join(scratch, "t.ticket.npz")
    Ticket.from_model(model, method="benchmark").save(ticket_path)
    imp_ticket_path = os.path.join(scratch, "imp.ticket.npz")
    Ticket.from_model(model, weights=rewind_state, method="imp").save(imp_ticket_path)
    dense = report.dense_bytes
    row = {
        "sparsity": sparsity,
        "measured_sparsity": round(pruning.sparsity_report(model).sparsity, 5),
        "dense_bytes": dense,
        "sparse_raw_bytes": report.sparse_bytes,
        "sparse_npz_bytes": report.sparse_file_bytes,
        "ticket_file_bytes": os.path.getsize(ticket_path),
        "imp_ticket_file_bytes": os.path.getsize(imp_ticket_path),
    }
    if saved_model:
        folder = os.path.join(scratch, "saved_model")
        export.export_saved_model(model, folder, overwrite=True)
        row["saved_model_bytes"] = folder_bytes(folder)
        row["saved_model_zip_bytes"] = zipped_bytes(folder, scratch)
        shutil.rmtree(folder)
    for key in list(row):
        if key.endswith("_bytes") and key != "dense_bytes":
            row[key.replace("_bytes", "_over_dense")] = round(row[key] / dense, 4)
    return row


def run_model(name: str, seed: int, saved_model: bool) -> dict:
    began = time.perf_counter()
    model = build(name, seed)
    out = {"model": name, "memory": memory(model), "sizes": []}
    rewind_state = capture_state(model)  # dense, like an IMP rewind point
    with tempfile.TemporaryDirectory(prefix="ticket-size-") as scratch:
        for sparsity in SPARSITIES:
            out["sizes"].append(
                sizes_at(model, sparsity, scratch, saved_model, rewind_state)
            )
    out["seconds"] = round(time.perf_counter() - began, 1)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=["lenet_300_100", "cifar_resnet_20", "resnet50"],
        choices=["lenet_300_100", "cifar_resnet_20", "resnet50"],
    )
    parser.add_argument(
        "--saved-model-all",
        action="store_true",
        help="also export ResNet-50 as a SavedModel (slow)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    info = _harness.machine_info(
        keras=keras.__version__, backend=keras.backend.backend()
    )
    _harness.header("ticket_size", info)
    results = []
    for name in args.models:
        saved_model = name != "resnet50" or args.saved_model_all
        results.append(run_model(name, args.seed, saved_model))
    for r in results:
        m = r["memory"]
        print(
            f"\n{r['model']}: mask bytes / kernel bytes = {m['mask_over_kernel']:.3f}"
            f" ({m['mask_bytes']:,} / {m['kernel_bytes']:,}); masked model / plain "
            f"model bytes = {m['masked_over_plain']:.3f}"
        )
        print(
            f"  {'sparsity':>8}{'dense MB':>10}{'raw':>8}{'npz':>8}{'ticket':>8}"
            f"{'IMP tkt':>9}{'SavedMdl':>10}{'SM zip':>8}   (each / dense bytes)"
        )
        for s in r["sizes"]:
            sm = s.get("saved_model_over_dense")
            smz = s.get("saved_model_zip_over_dense")
            print(
                f"  {s['sparsity']:>8.0%}{s['dense_bytes'] / 1e6:>10.2f}"
                f"{s['sparse_raw_over_dense']:>8.3f}{s['sparse_npz_over_dense']:>8.3f}"
                f"{s['ticket_file_over_dense']:>8.3f}"
                f"{s['imp_ticket_file_over_dense']:>9.3f}"
                f"{'-' if sm is None else format(sm, '.3f'):>10}"
                f"{'-' if smz is None else format(smz, '.3f'):>8}"
            )
    _harness.write_json(
        args.json, {"benchmark": "ticket_size", "info": info, "models": results}
    )


if __name__ == "__main__":
    main()
