"""Training-step time of the model zoo on the current device, to plan budgets.

Builds each model (masked layers, masks all ones), compiles it with SGD + momentum
and sparse cross-entropy, runs ``--warmup`` steps (the first one traces/compiles),
then times ``--repeats`` single ``train_on_batch`` steps on one random batch and
prints the median and the minimum. The input is 32x32x3 for every family by
default, including the ImageNet ResNets and MobileNetV2 (with their ImageNet
stems, which shrink a 32x32 input to 1x1 or 2x2 maps: a lower bound, only for
planning).

    KERAS_BACKEND=tensorflow python benchmarks/model_step_times.py \\
        --families cifar_resnet vgg --repeats 5

The backend is taken from ``KERAS_BACKEND``. Step times on a shared machine vary
with its load; the table prints the load average before and after.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_lottery import models  # noqa: E402

#: family -> [(label, registered name, options)]
FAMILIES = {
    "cifar_resnet": [
        ("cifar_resnet_20", "cifar_resnet_20", {}),
        ("cifar_resnet_56", "cifar_resnet_56", {}),
        ("cifar_resnet_110", "cifar_resnet_110", {}),
    ],
    "vgg": [("vgg11", "vgg11", {}), ("vgg16", "vgg16", {}), ("vgg19", "vgg19", {})],
    "resnet": [
        ("resnet18", "resnet18", {}),
        ("resnet50", "resnet50", {}),
    ],
    "mobilenet": [
        ("mobilenet_v1 (stem=cifar)", "mobilenet_v1", {}),
        ("mobilenet_v2 (stem=imagenet)", "mobilenet_v2", {}),
        ("mobilenet_v2 (stem=cifar)", "mobilenet_v2", {"stem": "cifar"}),
    ],
}


def time_steps(name, options, batch_size, size, classes, warmup, repeats, seed=0):
    """Returns (parameters, list of step seconds) for one model."""
    keras.utils.set_random_seed(seed)
    model = models.get(
        name, num_classes=classes, input_shape=(size, size, 3), **options
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch_size, size, size, 3)).astype("float32")
    y = rng.integers(0, classes, size=batch_size).astype("int32")
    for _ in range(warmup):
        model.train_on_batch(x, y)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss = model.train_on_batch(x, y)
        np.asarray(loss)  # make sure the step has finished
        times.append(time.perf_counter() - start)
    parameters = models.count_parameters(model)
    del model
    keras.backend.clear_session()
    return parameters, times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--families",
        nargs="+",
        default=list(FAMILIES),
        choices=list(FAMILIES),
        help="model families to time (default: all)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 1 or args.batch_size < 1:
        parser.error("--repeats, --warmup and --batch-size must be >= 1")

    print(
        f"# {datetime.datetime.now().isoformat(timespec='seconds')}  "
        f"backend={keras.backend.backend()}  keras={keras.__version__}  "
        f"cpus={os.cpu_count()}  {platform.processor() or platform.machine()}"
    )
    print(
        f"# batch {args.batch_size}, input {args.input_size}x{args.input_size}x3, "
        f"{args.classes} classes, warm-up {args.warmup}, repeats {args.repeats}, "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    header = f"| {'model':30} | {'params':>10} | {'median s/step':>13} | "
    header += f"{'min s/step':>10} | {'images/s':>8} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for family in args.families:
        for label, name, options in FAMILIES[family]:
            parameters, times = time_steps(
                name,
                options,
                args.batch_size,
                args.input_size,
                args.classes,
                args.warmup,
                args.repeats,
            )
            median = statistics.median(times)
            print(
                f"| {label:30} | {parameters:>10,} | {median:>13.3f} | "
                f"{min(times):>10.3f} | {args.batch_size / median:>8.0f} |",
                flush=True,
            )
    print(f"# load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
