"""Learning curves of several runs on one figure, from their ``training_log.csv``:
overlaid (runs from one start) or end to end (cycles that each start from the last).
"""

from __future__ import annotations

from pathlib import Path

from .runlog import read_log


def _log(run: Path) -> list[dict]:
    log = read_log(run / "training_log.csv")
    if not log:
        raise FileNotFoundError(f"no training_log.csv with rows in {run}")
    return log


def summarize(label: str, run: Path, log: list[dict]) -> dict:
    """A run's best validation epoch and its mean epoch time, from its log."""
    best = max(range(len(log)), key=lambda i: log[i]["val_accuracy"])
    times = [row["epoch_time_s"] for row in log if "epoch_time_s" in row]
    return {
        "label": label,
        "run": str(run),
        "epochs": len(log),
        "best_epoch": best + 1,
        "best_val_accuracy": round(log[best]["val_accuracy"], 4),
        "last_val_accuracy": round(log[-1]["val_accuracy"], 4),
        "last_train_accuracy": round(log[-1]["accuracy"], 4),
        "mean_epoch_s": round(sum(times) / len(times), 1) if times else None,
    }


def plot(runs: list[tuple[str, Path]], out: Path, chain: bool = False) -> list[dict]:
    """Validation (solid) and training accuracy under augmentation (dashed) per
    epoch for each ``(label, run folder)``; with ``chain`` each run starts where
    the one before ended. Writes ``out`` (PNG) and returns each run's summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs = [_log(run) for _, run in runs]
    summaries = [
        summarize(label, run, log) for (label, run), log in zip(runs, logs, strict=True)
    ]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    start = 0
    for (label, _), log, summary in zip(runs, logs, summaries, strict=True):
        epochs = range(start + 1, start + len(log) + 1)
        (line,) = ax.plot(epochs, [r["val_accuracy"] for r in log], label=label)
        ax.plot(epochs, [r["accuracy"] for r in log], "--", color=line.get_color())
        best = summary["best_epoch"] + start
        ax.plot(best, summary["best_val_accuracy"], "o", color=line.get_color())
        if chain:
            start += len(log)
    ax.set(
        xlabel="epoch (cycles end to end)" if chain else "epoch",
        ylabel="accuracy",
        title="validation (solid, dot = best epoch), training under augmentation "
        "(dashed)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return summaries
