"""Plotly figures for the report, as JSON that the pages hand to plotly.js."""

from __future__ import annotations

import numpy as np
import pandas as pd

from emotion_contract.labels import EMOTION_COLORS, EMOTIONS

COLORS = EMOTION_COLORS


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


def _episode_bars(episodes: pd.DataFrame) -> list:
    """One bar per episode on the strip, a trace per emotion (its colour)."""
    import plotly.graph_objects as go

    traces = []
    for emotion, group in episodes.groupby("emotion", sort=False):
        traces.append(
            go.Bar(
                x=group["duration_s"],
                base=group["start_s"],
                y=["episodes"] * len(group),
                orientation="h",
                marker={"color": COLORS.get(emotion, "#000"), "line": {"width": 0}},
                name=emotion,
                customdata=np.stack(
                    [
                        group["end_s"],
                        group["mean_probability"],
                        group["peak_probability"],
                    ],
                    axis=1,
                ),
                hovertemplate=(
                    f"{emotion}: %{{base:.2f}}-%{{customdata[0]:.2f}} s "
                    "(%{x:.2f} s), mean probability %{customdata[1]:.2f}, "
                    "peak %{customdata[2]:.2f}<extra>episode</extra>"
                ),
            )
        )
    return traces


def timeline_figure(data: pd.DataFrame, episodes: pd.DataFrame | None = None) -> str:
    """Stacked probabilities over time, and below them a strip of the track's
    episodes (or, without episodes, of the dominant emotion per row).

    Args:
        data: :func:`reports.summaries.timeline` output (NaN rows mark gaps).
        episodes: the track's rows of ``episodes/``.

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
    if episodes is not None and len(episodes):
        for bar in _episode_bars(episodes):
            fig.add_trace(bar, row=2, col=1)
    else:
        fig.add_trace(_dominant_strip(data), row=2, col=1)
    fig.update_layout(
        barmode="overlay",
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
