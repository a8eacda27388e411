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

# One colour per emotion (hex), shared by the report's charts, the live page and
# the annotated frames, so an emotion looks the same everywhere.
EMOTION_COLORS: dict[str, str] = {
    "angry": "#d62728",
    "disgust": "#8c564b",
    "fear": "#9467bd",
    "happy": "#f2b701",
    "sad": "#1f77b4",
    "surprise": "#ff7f0e",
    "neutral": "#9e9e9e",
}
