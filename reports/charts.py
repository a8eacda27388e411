"""Plotly figures for the report, as JSON that the pages hand to plotly.js."""

from __future__ import annotations

import numpy as np
import pandas as pd

from emotion_contract.labels import EMOTIONS

COLORS = {
    "angry": "#d62728",
    "disgust": "#8c564b",
    "fear": "#9467bd",
    "happy": "#f2b701",
    "sad": "#1f77b4",
    "surprise": "#ff7f0e",
    "neutral": "#9e9e9e",
}


def _dominant_strip(data: pd.DataFrame):
    import plotly.graph_objects as go

    probs = data[list(EMOTIONS)].to_numpy(dtype=float)
    present = ~np.isnan(probs).any(axis=1)
    z = np.full(len(data), np.nan)
    z[present] = probs[present].argmax(axis=1)
    n = len(EMOTIONS)
    scale = []
    for i, emotion in enumerate(EMOTIONS):  # one flat band of colour per class
        scale += [[i / n, COLORS[emotion]], [(i + 1) / n, COLORS[emotion]]]
    names = np.array([EMOTIONS[int(v)] if v == v else "" for v in z], dtype=object)
    return go.Heatmap(
        x=data["timestamp_s"],
        z=[z],
        zmin=-0.5,
        zmax=n - 0.5,
        colorscale=scale,
        showscale=False,
        customdata=[names],
        name="dominant",
        hovertemplate="%{x:.2f} s: %{customdata}<extra>dominant</extra>",
    )


def timeline_figure(data: pd.DataFrame) -> str:
    """Stacked probabilities over time, with a strip of the dominant emotion below.

    Args:
        data: :func:`reports.summaries.timeline` output (NaN rows mark gaps).

    Returns:
        The figure as JSON, with ``<`` escaped so it can sit inside a ``<script>``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.86, 0.14],
        vertical_spacing=0.03,
    )
    for emotion in EMOTIONS:
        fig.add_trace(
            go.Scatter(
                x=data["timestamp_s"],
                y=data[emotion],
                name=emotion,
                mode="lines",
                stackgroup="p",
                line={"width": 0.5, "color": COLORS[emotion]},
                fillcolor=COLORS[emotion],
                connectgaps=False,
                hovertemplate="%{y:.2f}",
            ),
            row=1,
            col=1,
        )
    fig.add_trace(_dominant_strip(data), row=2, col=1)
    fig.update_layout(
        height=330,
        margin={"l": 50, "r": 10, "t": 10, "b": 40},
        hovermode="x unified",
        showlegend=False,
        template="plotly_white",
    )  # the page has the legend
    fig.update_yaxes(range=[0, 1], title_text="probability", row=1, col=1)
    fig.update_yaxes(showticklabels=False, row=2, col=1)
    fig.update_xaxes(title_text="time (s)", row=2, col=1)
    return fig.to_json().replace("<", "\\u003c")
