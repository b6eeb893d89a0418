"""Save what a CPU training run needs to continue in a later session, as small files to commit.

For each run directory: the EMA weights of ``checkpoints/last.ckpt`` exported to
``training_state/<name>.safetensors`` (+ ``.json`` model card with steps and seconds, ``.sha256``), and the loss
history of every invocation (Lightning's ``logs/version_*/metrics.csv``) appended to
``training_state/<name>_loss.csv`` with a PNG (EMA-smoothed loss on a log axis, and the validation PSNR of this
run's logs). Continue with::

    mridiff train -c configs/<name>.yaml --init-from training_state/<name>.safetensors

    python scripts/save_training_state.py runs/recon_real runs/sr_real
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from mridiff.io.figures import loss_curve_png
from mridiff.training.run import export_checkpoint


def loss_history(run: Path, offset: int = 0, column: str = "train/loss") -> list[tuple[int, float]]:
    """``(step, value)`` of one column (default: the loss) from every Lightning CSV log of a run, in step order.

    Steps are shifted by ``offset`` (the steps of earlier runs continued with ``--init-from``).
    """
    rows: dict[int, float] = {}
    for log in sorted(run.glob("logs/version_*/metrics.csv")):
        with log.open() as fh:
            for r in csv.DictReader(fh):
                if r.get(column):
                    rows[int(r["step"]) + offset] = float(r[column])
    return sorted(rows.items())


def main() -> None:
    """Export and log every run given on the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=Path("training_state"))
    p.add_argument("--step-offset", type=int, default=None,
                   help="steps trained before this run (--init-from); default: from the checkpoint's totals")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for run in args.runs:
        name = run.name
        model = export_checkpoint(run / "checkpoints" / "last.ckpt", args.out / f"{name}.safetensors",
                                  overwrite=True)
        training = json.loads(model.with_suffix(".json").read_text()).get("training", {})
        offset = args.step_offset
        if offset is None:  # the totals the checkpoint carries from the run it continued (0 for a fresh run)
            offset = int((training.get("totals") or {}).get("steps", training.get("global_step", 0))) - int(
                training.get("global_step", 0))
        history = loss_history(run, offset)
        csv_path = args.out / f"{name}_loss.csv"
        previous: list[tuple[int, float]] = []
        if csv_path.exists():
            with csv_path.open() as fh:
                previous = [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(fh)]
        merged = sorted({**dict(previous), **dict(history)}.items())
        with csv_path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["step", "loss"])
            writer.writerows(merged)
        if len(merged) > 1:
            loss_curve_png(merged, csv_path.with_suffix(".png"), title=f"{name}: training loss",
                           val_history=loss_history(run, offset, "val/psnr") or None)
        print(f"{run}: {model} ({len(merged)} loss points)")


if __name__ == "__main__":
    main()
