"""An interrupted phase's monitoring state, rebuilt when it resumes.

``BackupAndRestore`` brings back the weights and the optimizer (with a rate the
plateau schedule cut), but Keras resets every monitoring callback when ``fit``
starts: without the record kept here a resumed phase would overwrite ``best.keras``
with a worse epoch and start its plateau and early-stopping patience afresh.
"""

from __future__ import annotations

import json
from pathlib import Path


def val_history(path: Path):
    """A callback that records each epoch's validation accuracy in ``path`` (JSON,
    epoch -> value), the record an interrupted phase's counters are rebuilt from."""
    import keras

    class ValHistory(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs and "val_accuracy" in logs:
                history = read_val_history(path)
                history[epoch] = float(logs["val_accuracy"])
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(history))

    return ValHistory()


def read_val_history(path: Path) -> dict[int, float]:
    """The recorded validation accuracy of each finished epoch (none if no record)."""
    if not path.exists():
        return {}
    return {int(epoch): value for epoch, value in json.loads(path.read_text()).items()}


def replay(callbacks, history: dict[int, float]) -> None:
    """Put the monitoring callbacks' counters (best value, epochs waited) where
    the epochs in ``history`` left them, by Keras' own updates for ``mode="max"``."""
    import keras

    for callback in callbacks:
        for epoch, value in sorted(history.items()):
            best = callback.best
            improved = best is None or value - callback.min_delta > best
            if isinstance(callback, keras.callbacks.ReduceLROnPlateau):
                if callback.in_cooldown():
                    callback.cooldown_counter -= 1
                    callback.wait = 0
                if improved:
                    callback.best, callback.wait = value, 0
                elif not callback.in_cooldown():
                    callback.wait += 1
                    if callback.wait >= callback.patience:  # the rate was cut then
                        callback.cooldown_counter = callback.cooldown
                        callback.wait = 0
            elif isinstance(callback, keras.callbacks.EarlyStopping):
                callback.wait += 1
                if improved:
                    callback.best, callback.best_epoch, callback.wait = value, epoch, 0
            elif improved:
                callback.best = value


def resume(monitors, path: Path):
    """A callback that replays ``path``'s record into ``monitors``; it must come
    after them in the callback list, so that it runs after their resets."""
    import keras

    class Resume(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            replay(monitors, read_val_history(path))

    return Resume()
