"""Per-round test accuracy of every run folder of the rewinding study, as JSON.

    python benchmarks/device/summarize_study.py STUDY_DIR > summary.json

Reads only ``config.yaml`` and ``round_*/record.json`` (finished rounds), so it
works on a study that was stopped part-way.
"""

from __future__ import annotations

import glob
import json
import os
import sys

import yaml


def summarize(study_dir: str) -> list[dict]:
    runs = []
    for config_path in sorted(glob.glob(os.path.join(study_dir, "*", "config.yaml"))):
        directory = os.path.dirname(config_path)
        with open(config_path) as handle:
            config = yaml.safe_load(handle)
        rounds = []
        for path in sorted(
            glob.glob(os.path.join(directory, "round_*", "record.json"))
        ):
            with open(path) as handle:
                record = json.load(handle)
            ticket = record["ticket"]
            rounds.append(
                {
                    "round": record["round"],
                    "remaining": record["fraction_remaining"],
                    "test_accuracy": ticket["test"]["accuracy"],
                    "final_train_accuracy": ticket["final"].get("accuracy"),
                    "final_val_accuracy": ticket["final"].get("val_accuracy"),
                    "epochs": ticket["epochs"],
                    "wall_time": ticket["wall_time"],
                }
            )
        runs.append(
            {
                "run": os.path.basename(directory),
                "seed": config["seed"],
                "rewind": str(config["pruning"]["rewind"]),
                "duration": str(config["training"]["duration"]),
                "finished": os.path.exists(os.path.join(directory, "result.json")),
                "rounds": rounds,
            }
        )
    return runs


if __name__ == "__main__":
    json.dump(summarize(sys.argv[1]), sys.stdout, indent=1)
    print()
