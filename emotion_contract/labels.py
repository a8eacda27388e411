"""The emotion labels, in FER2013's model order.

This is the one place the order is written down: the training package builds its
models with it, the Parquet schema names its probability columns after it, and the
analyzer checks a model's own class list against it.
"""

EMOTIONS: tuple[str, ...] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "sad",
    "surprise",
    "neutral",
)
