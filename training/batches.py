"""Training batches drawn from in-memory arrays: full batches only, reshuffled each
epoch, optionally blended pairwise with mixup (Zhang et al., ICLR 2018)."""

from __future__ import annotations

import numpy as np


def mixup(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    rng: np.random.Generator,
    alpha: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blend each face with another face of the batch.

    Face ``i`` becomes ``lam_i * x_i + (1 - lam_i) * x_j`` with ``lam_i`` drawn
    from Beta(alpha, alpha) and ``j`` a random partner; its target and its sample
    weight are blended with the same ``lam_i``.
    """
    partner = rng.permutation(len(x))
    lam = rng.beta(alpha, alpha, len(x)).astype(x.dtype)
    lx = lam.reshape(-1, *([1] * (x.ndim - 1)))
    ly = lam[:, None].astype(y.dtype)
    return (
        lx * x + (1 - lx) * x[partner],
        ly * y + (1 - ly) * y[partner],
        lam * w + (1 - lam) * w[partner],
    )


def FixedBatches(x, y, w, batch: int, *, seed: int, mixup_alpha: float = 0.0):
    """A Keras dataset of full batches of ``(x, y, w)``, reshuffled every epoch.

    Every batch has the same shape, so XLA compiles one training step. With
    ``mixup_alpha > 0`` each batch is blended by :func:`mixup`.
    """
    import keras

    class _Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(x))

        def __len__(self) -> int:
            return len(x) // batch

        def __getitem__(self, i: int):
            pick = np.sort(self.order[i * batch : (i + 1) * batch])
            if mixup_alpha > 0:
                return mixup(x[pick], y[pick], w[pick], self.rng, mixup_alpha)
            return x[pick], y[pick], w[pick]

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(len(x))

    return _Batches()
