"""The emotion model: raw 48x48 grayscale faces in, seven FER2013 probabilities out.

Resizing, grey-to-RGB and EfficientNet's own normalisation live inside the model, so
any caller (the analyzer, ``evaluate``) feeds raw pixel values 0..255.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from emotion_contract.labels import EMOTIONS

from .recipes import Recipe

logger = logging.getLogger(__name__)

INPUT_SIZE = 48  # FER2013's native size: what the model takes from callers
BASE_NAME = "efficientnetb1"
WEIGHTS_FILE = "efficientnetb1_notop.h5"


class WeightsUnavailable(RuntimeError):
    """The ImageNet weights could not be downloaded nor found locally."""


def build_model(recipe: Recipe):
    """Build (not compile) the classifier for ``recipe``.

    Raises:
        WeightsUnavailable: ``recipe.weights == "imagenet"`` and the download fails.
    """
    import keras
    from keras import layers

    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="face")
    x = inputs
    if recipe.image_size != INPUT_SIZE:
        x = layers.Resizing(recipe.image_size, recipe.image_size, name="resize")(x)
    x = _augmentation(recipe)(x)
    x = layers.Concatenate(name="grey_to_rgb")([x, x, x])
    base = _base(recipe)
    x = base(x)
    x = layers.Dropout(recipe.dropout, name="head_dropout")(x)
    outputs = layers.Dense(len(EMOTIONS), activation="softmax", name="emotion")(x)
    return keras.Model(inputs, outputs, name=f"fer_{BASE_NAME}_{recipe.name}")


def stability_model(model, recipe: Recipe):
    """``model`` for fitting with stability training (``recipe.stability > 0``).

    The returned model shares every layer (so every weight) with ``model`` and
    predicts what ``model`` predicts. While training, each augmented face also goes
    through the network with a small extra shift and zoom, and
    ``recipe.stability * KL(p_clean || p_jittered)`` is added to the loss, the clean
    prediction held fixed. Save ``model``, not this one.
    """
    import keras
    from keras import layers

    t, z = recipe.stability_translation, recipe.stability_zoom
    jitter = keras.Sequential(
        [
            layers.RandomTranslation(t, t, fill_mode="reflect"),
            layers.RandomZoom(z, fill_mode="reflect"),
        ],
        name="stability_jitter",
    )
    inputs = keras.Input(model.input_shape[1:], name="face")
    x = inputs
    if "resize" in {layer.name for layer in model.layers}:
        x = model.get_layer("resize")(x)
    clean = model.get_layer("augmentation")(x)
    jittered = jitter(clean)

    def head(v):
        for name in ("grey_to_rgb", BASE_NAME, "head_dropout", "emotion"):
            layer = model.get_layer(name)
            v = layer([v, v, v]) if name == "grey_to_rgb" else layer(v)
        return v

    outputs = _stability_loss_class()(recipe.stability, name="stability")(
        head(clean), head(jittered)
    )
    return keras.Model(inputs, outputs, name=f"{model.name}_stability")


@functools.cache
def _stability_loss_class():
    """The loss layer, defined (and registered for loading) on first use, so that
    importing this module does not import Keras."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="training")
    class StabilityLoss(keras.layers.Layer):
        """Adds ``weight * KL(stop_gradient(p) || q)``; passes ``p`` through."""

        def __init__(self, weight: float, **kwargs) -> None:
            super().__init__(**kwargs)
            self.weight = weight

        def call(self, p, q):
            p_fixed = ops.stop_gradient(p)
            eps = 1e-7
            kl = ops.sum(p_fixed * (ops.log(p_fixed + eps) - ops.log(q + eps)), axis=-1)
            self.add_loss(self.weight * ops.mean(kl))
            return p

        def compute_output_shape(self, p_shape, q_shape):
            return p_shape

        def get_config(self) -> dict:
            return {**super().get_config(), "weight": self.weight}

    return StabilityLoss


def _augmentation(recipe: Recipe):
    import keras
    from keras import layers

    steps = [layers.RandomFlip("horizontal"), layers.RandomRotation(recipe.rotation)]
    if recipe.translation:
        t = recipe.translation
        steps.append(layers.RandomTranslation(t, t, fill_mode="reflect"))
    if recipe.zoom:
        steps.append(layers.RandomZoom(recipe.zoom, fill_mode="reflect"))
    if recipe.erasing:
        p = recipe.erasing
        steps.append(layers.RandomErasing(factor=(p, p), value_range=(0, 255)))
    return keras.Sequential(steps, name="augmentation")


def _base(recipe: Recipe):
    import keras

    shape = (recipe.image_size, recipe.image_size, 3)
    weights = recipe.weights
    try:
        base = keras.applications.EfficientNetB1(
            include_top=False, weights=weights, input_shape=shape, pooling="avg"
        )
    except Exception as exc:  # keras raises several types for a failed download
        if weights != "imagenet":
            raise
        cache = (
            Path(
                keras.config.keras_home()
                if hasattr(keras.config, "keras_home")
                else Path.home() / ".keras"
            )
            / "models"
            / WEIGHTS_FILE
        )
        raise WeightsUnavailable(
            f"could not download the ImageNet weights for EfficientNetB1 ({exc}). "
            f"Place {WEIGHTS_FILE} at {cache} (or pass its path with --weights "
            "PATH), or train from scratch with --weights none."
        ) from exc
    if recipe.zero_init_residual:
        zero_init_residual_blocks(base)
    set_stochastic_depth(base, recipe.stochastic_depth)
    return base


KERAS_DROP_CONNECT = 0.2  # keras.applications' EfficientNet drop_connect_rate


def set_stochastic_depth(base, rate: float) -> None:
    """Scale a freshly built base's per-block drop rates (``*_drop`` layers, which
    drop a block's whole residual branch per face) as if Keras had been given
    ``drop_connect_rate=rate``."""
    for layer in base.layers:
        if layer.name.endswith("_drop"):
            layer.rate = layer.rate * rate / KERAS_DROP_CONNECT


def zero_init_residual_blocks(base) -> int:
    """Zero the gamma of each residual MBConv block's last BatchNorm.

    Each such block then starts as an identity, which lets EfficientNet train from
    scratch on FER2013 (measured: 36% vs 24% train accuracy after 400 steps).
    Returns the number of blocks changed.
    """
    names = {layer.name for layer in base.layers}
    changed = 0
    for layer in base.layers:
        prefix = layer.name.removesuffix("project_bn")
        if layer.name.endswith("_project_bn") and f"{prefix}add" in names:
            layer.gamma.assign(layer.gamma * 0.0)
            changed += 1
    logger.info("zero-initialised %d residual blocks", changed)
    return changed


def set_trainable(model, trainable: str) -> None:
    """Apply a phase's ``trainable`` rule to the EfficientNet base."""
    base = model.get_layer(BASE_NAME)
    if trainable == "all":
        base.trainable = True
    elif trainable == "head":
        base.trainable = False
    elif trainable.startswith("after:"):
        first = int(trainable.split(":", 1)[1])
        base.trainable = True
        for i, layer in enumerate(base.layers):
            layer.trainable = i >= first
    else:
        raise ValueError(f"unknown trainable rule {trainable!r}")
