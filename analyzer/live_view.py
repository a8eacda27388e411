"""The live view: the annotated video and each track's last minute, over HTTP.

A small threaded server on the standard library with its own routes only: ``/``
(the page), ``/stream.mjpg`` (the annotated frames as MJPEG), ``/frame.jpg`` (the
newest one), ``/state.json`` (counters and each track's smoothed probabilities over
the last minute) and ``/static/plotly.min.js`` (from the installed plotly package,
so the page works offline). Anything else is a 404.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from emotion_contract.labels import EMOTION_COLORS, EMOTIONS

from .annotate import draw_bars, draw_faces

logger = logging.getLogger(__name__)

HISTORY_S = 60.0
JPEG_QUALITY = 80


def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


class LiveView:
    """Holds the newest annotated frame and the recent series, and serves them."""

    def __init__(self, host: str, port: int, *, source: str) -> None:
        self.host, self.port, self.source = host, port, source
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._series: dict[int, deque] = {}
        self._stats: dict = {}
        self.closed = False
        self.server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    # -- fed by the analysis loop

    def publish(self, image: np.ndarray, rows: dict, box_source: str, arrival) -> None:
        """Annotate ``image`` with ``rows`` (one frame's faces), encode it, and add
        the faces' smoothed probabilities to their tracks' series."""
        import cv2

        annotated = image.copy()
        n = len(rows["frame_index"])
        columns = [f"{e}_smoothed" if f"{e}_smoothed" in rows else e for e in EMOTIONS]
        probs = np.stack([rows[c] for c in columns], axis=1) if n else None
        faces = [
            (
                int(rows["track_id"][i]),
                *(float(rows[c][i]) for c in ("x1", "y1", "x2", "y2")),
                str(rows["emotion"][i]),
                float(rows[rows["emotion"][i]][i]),
            )
            for i in range(n)
        ]
        draw_faces(annotated, faces, measured=True)
        for i, face in enumerate(faces):
            draw_bars(annotated, face[1:5], probs[i])
        ok, buf = cv2.imencode(
            ".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        now = arrival.wall_time_s
        with self._cond:
            if ok:
                self._jpeg = buf.tobytes()
                self._seq += 1
            for i, face in enumerate(faces):
                series = self._series.setdefault(face[0], deque())
                series.append((now, probs[i].round(4).tolist()))
            for track in list(self._series):
                series = self._series[track]
                while series and series[0][0] < now - HISTORY_S:
                    series.popleft()
                if not series:
                    del self._series[track]
            self._stats |= {"wall_time_s": now, "faces": n, "box_source": box_source}
            self._cond.notify_all()

    def set_stats(self, stats: dict) -> None:
        with self._cond:
            self._stats |= stats

    # -- read by the handlers

    def wait_frame(self, seen: int, timeout: float) -> tuple[bytes | None, int]:
        with self._cond:
            if self._seq == seen and not self.closed:
                self._cond.wait(timeout)
            if self._seq == seen:
                return None, seen
            return self._jpeg, self._seq

    def state(self) -> dict:
        with self._cond:
            return {
                "source": self.source,
                "emotions": list(EMOTIONS),
                "history_s": HISTORY_S,
                "stats": dict(self._stats),
                "tracks": {
                    str(track): {"t": [t for t, _ in s], "p": [p for _, p in s]}
                    for track, s in self._series.items()
                },
            }

    # -- the server

    def start(self) -> None:
        view = self

        class Handler(_Handler):
            pass

        Handler.view = view
        self.server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]  # port 0: the one given
        threading.Thread(
            target=self.server.serve_forever, name="live-view", daemon=True
        ).start()

    def stop(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    view: LiveView
    server_version = "emotion-analytics-live"

    def log_message(self, format, *args) -> None:  # noqa: A002 (the base's name)
        logger.debug("live view: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 (the base's name)
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", _page(self.view.source))
        elif path == "/state.json":
            self._send(200, "application/json", json.dumps(self.view.state()).encode())
        elif path == "/frame.jpg":
            jpeg, _ = self.view.wait_frame(-1, 0)
            if jpeg is None:
                self._send(503, "text/plain", b"no frame yet")
            else:
                self._send(200, "image/jpeg", jpeg)
        elif path == "/stream.mjpg":
            self._stream()
        elif path == "/static/plotly.min.js":
            self._send(200, "application/javascript", _plotly_js().read_bytes())
        else:
            self._send(404, "text/plain", b"not found")

    def _send(self, code: int, kind: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seen = -1
        try:
            while not self.view.closed:
                jpeg, seen = self.view.wait_frame(seen, timeout=1.0)
                if jpeg is None:
                    continue
                self.wfile.write(
                    b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                    + str(len(jpeg)).encode()
                    + b"\r\n\r\n"
                    + jpeg
                    + b"\r\n"
                )
        except (BrokenPipeError, ConnectionResetError):
            return


def _page(source: str) -> bytes:
    import jinja2

    env = jinja2.Environment(autoescape=True)
    return env.from_string(PAGE).render(source=source, colors=EMOTION_COLORS).encode()


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>live: {{ source }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 16px; color: #222; }
#video { max-width: 100%; background: #000; display: block; }
#stats { color: #555; margin: 8px 0 16px; }
.chart { height: 220px; }
</style></head>
<body>
<h1>Live: {{ source }}</h1>
<img id="video" src="stream.mjpg" alt="annotated live video"
     onload="this.dataset.frames = (+this.dataset.frames || 0) + 1">
<div id="stats">waiting for frames...</div>
<div id="charts"></div>
<script src="static/plotly.min.js"></script>
<script>
var colors = {{ colors|tojson }};
function update() {
  fetch("state.json", {cache: "no-store"}).then(function (r) { return r.json(); })
  .then(function (state) {
    var s = state.stats;
    if (s.wall_time_s) {
      document.getElementById("stats").textContent =
        "analyzed " + (s.frames_analyzed || 0) + " frames, dropped " +
        (s.frames_dropped || 0) + ", " + (s.analyzed_fps || 0) + " frames/s; " +
        s.faces + " face(s) in the newest frame";
    }
    var holder = document.getElementById("charts");
    Object.keys(state.tracks).forEach(function (id) {
      var div = document.getElementById("track-" + id);
      if (!div) {
        div = document.createElement("div");
        div.id = "track-" + id; div.className = "chart";
        holder.insertBefore(div, holder.firstChild);
      }
      var track = state.tracks[id];
      var now = s.wall_time_s;
      var x = track.t.map(function (t) { return t - now; });
      var data = state.emotions.map(function (e, i) {
        return {x: x, y: track.p.map(function (p) { return p[i]; }), name: e,
                mode: "lines", line: {color: colors[e]}, stackgroup: "one"};
      });
      Plotly.react(div, data, {title: {text: "Track " + id}, margin: {t: 30, b: 30},
        xaxis: {range: [-state.history_s, 0], title: {text: "seconds ago"}},
        yaxis: {range: [0, 1]}}, {displaylogo: false, responsive: true});
    });
    Array.prototype.slice.call(holder.children).forEach(function (div) {
      if (!(div.id.slice(6) in state.tracks)) { holder.removeChild(div); }
    });
  }).catch(function () {});
}
setInterval(update, 1000); update();
</script>
</body></html>
"""
