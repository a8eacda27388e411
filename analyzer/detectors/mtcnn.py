"""MTCNN with the ``mtcnn`` package's weights (inside its wheel), on two runtimes.

``keras``: the package itself (TensorFlow, eager; the ``[train]`` extra).
``litert``: LiteRT copies of its three networks, each checked against the
package's network on a fixed batch (:mod:`analyzer.litert`), and the cascade below
around them: image pyramid, P-Net proposals, R-Net and O-Net refinement,
non-maximum suppression. The copies ship in ``mtcnn_models/``, so this needs
neither TensorFlow nor the package, and it is several times faster (``python -m
benchmarks.detectors``). ``auto`` (the default) takes ``litert`` when LiteRT is
installed.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections import OrderedDict
from pathlib import Path

import numpy as np

from emotion_contract.extras import MissingExtra, install_hint, require

from ..faces import Faces
from .base import DetectorUnavailable

# The package's defaults (mtcnn 1.0.0, ``MTCNN.detect_faces``).
MIN_FACE = 20
SCALE_FACTOR = 0.709
THRESHOLDS = {"pnet": 0.6, "rnet": 0.7, "onet": 0.8}
PATCH = {"rnet": 24, "onet": 48}
BATCH = {"rnet": 32, "onet": 8}  # largest interpreter batches (see _refine)
MAX_INTERPRETERS = 48  # one video size needs ~12 (a pyramid of P-Net sizes + 2)
NETS = ("pnet", "rnet", "onet")
BUNDLED = Path(__file__).resolve().parent / "mtcnn_models"  # the shipped copies


class MtcnnDetector:
    """The three-stage MTCNN cascade (P-, R-, O-Net), run on whole batches.

    Args:
        threshold: minimum O-Net confidence to keep a face.
        runtime: ``auto``, ``litert`` or ``keras`` (see the module docstring).
    """

    name = "mtcnn"
    has_runtimes = True  # create_detector passes --detector-runtime on

    def __init__(self, *, threshold: float = 0.9, runtime: str = "auto") -> None:
        from .. import litert

        self.threshold = threshold
        self.runtime, self._impl = litert.pick(
            runtime, LiteCascade, PackageCascade, unavailable=DetectorUnavailable
        )

    def detect(self, frames: list[np.ndarray]) -> list[Faces]:
        if not frames:
            return []
        return [_to_faces(found, self.threshold) for found in self._impl.detect(frames)]

    @property
    def can_refine(self) -> bool:
        """Whether :meth:`refine` works here (the LiteRT runtime only)."""
        return hasattr(self._impl, "refine")

    @property
    def can_check(self) -> bool:
        """Whether :meth:`face_scores` works here (the LiteRT runtime only)."""
        return hasattr(self._impl, "face_scores")

    def face_scores(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """O-Net's face probability for each box of ``frame``, boxes unchanged:
        a check that a carried box still holds a face, at about 0.4 ms a box."""
        if not len(boxes):
            return np.zeros(0, dtype=np.float32)
        return self._impl.face_scores(frame, boxes)

    def refine(self, frame: np.ndarray, faces: Faces) -> Faces:
        """Re-place faces carried from an earlier frame with O-Net alone.

        MTCNN's last stage regresses a face's box from a square around it and
        scores it; run on boxes that tracking carried to ``frame``, it gives
        detector-quality boxes for a fraction of a full detection (no image
        pyramid). Faces that no longer score ``threshold`` are dropped; the ids
        and order of the others are kept.
        """
        if not len(faces):
            return faces
        found = self._impl.refine(frame, faces.boxes)
        keep = np.flatnonzero(found[:, 4] >= self.threshold)
        if len(keep):
            keep = np.sort(keep[nms(found[keep], 0.7, "min")])
        return Faces(
            found[keep, :4].astype(np.float32),
            found[keep, 4].astype(np.float32),
            faces.track_ids[keep],
        )


def _to_faces(found: np.ndarray, threshold: float) -> Faces:
    """``(n, 5)`` rows of x1, y1, x2, y2, confidence -> :class:`Faces`."""
    found = found[found[:, 4] >= threshold]
    if not len(found):
        return Faces.empty()
    return Faces(found[:, :4].astype(np.float32), found[:, 4].astype(np.float32))


class PackageCascade:
    """The ``mtcnn`` package's own ``detect_faces`` (TensorFlow)."""

    def __init__(self) -> None:
        try:
            purpose = "MTCNN on Keras (--detector-runtime keras)"
            MTCNN = require("mtcnn", "train", purpose).MTCNN
        except MissingExtra as exc:
            raise DetectorUnavailable(str(exc)) from exc
        self._mtcnn = MTCNN(device="CPU:0")

    def detect(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        rgb = [np.ascontiguousarray(f[..., ::-1]) for f in frames]
        # mtcnn 1.0.0 fails on batches when min_face_size or the stage thresholds
        # are passed (shape mismatch in P-Net), so filter by confidence afterwards.
        found = self._mtcnn.detect_faces(rgb, box_format="xyxy")
        if len(frames) == 1 and (not found or isinstance(found[0], dict)):
            found = [found]
        return [
            np.array(
                [[*f["box"], f["confidence"]] for f in faces], dtype=np.float64
            ).reshape(-1, 5)
            for faces in found
        ]


def package_weights(name: str) -> Path | None:
    """The package's weights file for ``name`` (pnet, rnet, onet), found without
    importing it (it imports TF); ``None`` when the package is not installed."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "assets" / "weights" / f"{name}.lz4"


def source_digest(weights: Path) -> str:
    """What names a network's LiteRT copy: its weights, and the conversion's version."""
    return hashlib.sha256(b"mtcnn-litert-1" + weights.read_bytes()).hexdigest()


def copy_settings(name: str) -> dict:
    """How a network's copy is made and checked: P-Net takes any image size."""
    size = PATCH.get(name)
    if size is None:
        return {
            "input_shape": (None, None, 3),
            "check_shape": (2, 37, 53, 3),
            "check_range": (-1.0, 1.0),
        }
    return {
        "input_shape": (size, size, 3),
        "check_shape": (16, size, size, 3),
        "check_range": (-1.0, 1.0),
    }


def package_net(name: str):
    """The package's Keras network ``name`` (pnet, rnet, onet) with its weights."""
    from mtcnn.stages import StageONet, StagePNet, StageRNet

    stage = {"pnet": StagePNet, "rnet": StageRNet, "onet": StageONet}[name]()
    return stage.model


def _copy(name: str) -> Path:
    """The LiteRT copy of one network: the shipped one, unless the installed
    mtcnn package has other weights (then a copy converted from those)."""
    from .. import litert

    bundled = BUNDLED / f"{name}.tflite"
    weights = package_weights(name)
    if weights is None:
        if litert.made_from(bundled, None):
            return bundled
        raise DetectorUnavailable(
            f"MTCNN's LiteRT copy {bundled} is missing or damaged: reinstall the "
            f"package, or install the mtcnn package to convert it again "
            f"({install_hint('train')})"
        )
    return litert.cached_copy(
        weights,
        source_digest(weights),
        lambda: package_net(name),
        bundled=bundled,
        **copy_settings(name),
    )


class LiteCascade:
    """MTCNN on LiteRT copies of the package's networks (module docstring)."""

    def __init__(self) -> None:
        from .. import litert

        self._litert = litert
        self._paths = {name: _copy(name) for name in NETS}
        self._nets: OrderedDict[tuple, object] = OrderedDict()

    def _net(self, name: str, shape: tuple):
        """An interpreter per input shape; the least recently used go first, so a
        folder of photos of many sizes does not pile up interpreters."""
        key = (name, shape)
        if key in self._nets:
            self._nets.move_to_end(key)
        else:
            self._nets[key] = self._litert.LiteRTNet(self._paths[name], shape)
            if len(self._nets) > MAX_INTERPRETERS:
                self._nets.popitem(last=False)
        return self._nets[key]

    def detect(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Per frame, ``(n, 5)`` rows of x1, y1, x2, y2, confidence.

        P-Net runs frame by frame; R-Net and O-Net see the candidates of all
        frames together, so their fixed-size batches are full.
        """
        import cv2

        images, found = [], []
        for index, frame in enumerate(frames):
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            images.append(_normalize(rgb))
            boxes = self._propose(rgb)
            found.append(np.concatenate([boxes, np.full((len(boxes), 1), index)], 1))
        boxes = np.concatenate(found)
        for name in ("rnet", "onet"):
            if not len(boxes):
                break
            boxes = self._refine(name, images, _square(boxes))
        out = []
        for index, frame in enumerate(frames):
            mine = boxes[boxes[:, 5] == index, :5]
            h, w = frame.shape[:2]
            mine[:, [0, 2]] = mine[:, [0, 2]].clip(0, w - 1)
            mine[:, [1, 3]] = mine[:, [1, 3]].clip(0, h - 1)
            out.append(mine)
        return out

    def refine(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """O-Net on the squares around ``boxes``: ``(n, 5)`` boxes and scores,
        in the input's order, unfiltered."""
        import cv2

        h, w = frame.shape[:2]
        image = _normalize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        squares = _square(np.concatenate([boxes, np.zeros((len(boxes), 1))], 1))
        size = PATCH["onet"]
        patches = np.stack([_patch(image, b, size) for b in squares])
        reg, _, prob = self._net("onet", patches.shape)(patches)
        found = _regress(squares, reg)
        found[:, 4] = prob[:, 1]
        found[:, [0, 2]] = found[:, [0, 2]].clip(0, w - 1)
        found[:, [1, 3]] = found[:, [1, 3]].clip(0, h - 1)
        return found

    def face_scores(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """O-Net's face probability on the square around each box; only the
        patches are converted (the frame as a whole is not)."""
        import cv2

        squares = _square(np.asarray(boxes, dtype=np.float64))
        size = PATCH["onet"]
        patches = np.stack(
            [
                _normalize(cv2.cvtColor(_patch(frame, b, size), cv2.COLOR_BGR2RGB))
                for b in squares
            ]
        )
        batch = min(BATCH["onet"], 1 << (len(patches) - 1).bit_length())
        net = self._net("onet", (batch, size, size, 3))
        chunks = self._litert.predict_padded(net, patches)
        return np.concatenate([c[-1] for c in chunks])[:, 1].astype(np.float32)

    def _propose(self, rgb: np.ndarray) -> np.ndarray:
        """P-Net over the image pyramid: ``(n, 5)`` candidate boxes with scores."""
        import cv2

        h, w = rgb.shape[:2]
        found, scaled = [], rgb
        for scale in pyramid(h, w):
            hs, ws = int(h * scale), int(w * scale)
            # Each level from the one before: the reads shrink with the levels.
            scaled = cv2.resize(scaled, (ws, hs), interpolation=cv2.INTER_AREA)
            reg, prob = self._net("pnet", (1, hs, ws, 3))(_normalize(scaled)[None])
            boxes = _pnet_boxes(reg[0], prob[0, ..., 1], scale, THRESHOLDS["pnet"])
            found.append(boxes[nms(boxes, 0.5)])
        boxes = np.concatenate(found) if found else np.zeros((0, 5))
        return boxes[nms(boxes, 0.7)]

    def _refine(self, name: str, images: list, boxes: np.ndarray) -> np.ndarray:
        """R-Net or O-Net on square candidates: rescored, regressed, suppressed.

        ``boxes`` rows: x1, y1, x2, y2, score, frame index.
        """
        size = PATCH[name]
        patches = np.stack([_patch(images[int(b[5])], b, size) for b in boxes])
        # A batch of up to BATCH rows, padded to the next power of two: a few
        # candidates (a frame with one face) do not pay for a full batch.
        batch = min(BATCH[name], 1 << (len(patches) - 1).bit_length())
        net = self._net(name, (batch, size, size, 3))
        chunks = self._litert.predict_padded(net, patches)
        reg = np.concatenate([c[0] for c in chunks])
        score = np.concatenate([c[-1] for c in chunks])[:, 1]
        refined = _regress(boxes, reg)
        refined[:, 4] = score
        refined = refined[score > THRESHOLDS[name]]
        method = "min" if name == "onet" else "union"
        return refined[nms(refined, 0.7, method)]


def _normalize(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> MTCNN's input range, about [-1, 1]: (x - 127.5) / 128.

    One OpenCV pass, bit for bit the same as the NumPy expression (every term is
    exact in float32): 0.13-0.17 against 2.4-2.9 ms on a 596x336 frame.
    """
    import cv2

    return cv2.addWeighted(rgb, 1.0 / 128.0, rgb, 0.0, -127.5 / 128.0, dtype=cv2.CV_32F)


def pyramid(h: int, w: int, min_face: int = MIN_FACE) -> list[float]:
    """Scales at which P-Net's 12 px window sees faces from ``min_face`` px up."""
    scale, side, scales = 12.0 / min_face, min(h, w), []
    while side * scale >= 12:
        scales.append(scale)
        scale *= SCALE_FACTOR
    return scales


def _pnet_boxes(
    reg: np.ndarray, prob: np.ndarray, scale: float, threshold: float
) -> np.ndarray:
    """P-Net's score map -> boxes in image pixels (stride 2, 12 px cells)."""
    ys, xs = np.nonzero(prob > threshold)
    x1, y1 = xs * 2.0, ys * 2.0
    cells = np.stack([x1, y1, x1 + 12, y1 + 12], axis=1)
    boxes = (cells + reg[ys, xs] * 12.0) / scale
    return np.concatenate([boxes, prob[ys, xs, None]], axis=1)


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply R-/O-Net's box regression (offsets in units of the box's size)."""
    sides = np.stack([boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1])
    out = boxes.copy()
    out[:, :4] += reg * np.concatenate([sides, sides]).T
    return out


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around the same centre."""
    boxes = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    boxes[:, 0] += (w - side) / 2
    boxes[:, 1] += (h - side) / 2
    boxes[:, 2] = boxes[:, 0] + side
    boxes[:, 3] = boxes[:, 1] + side
    return boxes


def _patch(image: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """``box`` resampled to ``size`` x ``size``; outside the image reads as 0.

    Samples as TensorFlow's ``crop_and_resize`` on boxes normalised by the image
    size (the package's way): the first and last samples lie on the box's edges.
    """
    import cv2

    h, w = image.shape[:2]
    x1, y1, x2, y2 = box[:4] * np.array([(w - 1) / w, (h - 1) / h] * 2)
    # Output pixel (u, v) reads the image at (x1 + u * ax, y1 + v * ay).
    ax, ay = (x2 - x1) / (size - 1), (y2 - y1) / (size - 1)
    inverse = np.array([[ax, 0, x1], [0, ay, y1]], dtype=np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(image, inverse, (size, size), flags=flags, borderValue=0)


def nms(boxes: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, best score first.

    ``boxes`` rows: x1, y1, x2, y2, score and, optionally, a frame index.

    ``method`` ``union`` is IoU; ``min`` divides the overlap by the smaller area
    (MTCNN's last stage, which drops a small box inside a larger face).
    """
    x1, y1, x2, y2, score = boxes[:, :5].T.copy()
    if boxes.shape[1] > 5:  # a frame index: boxes of different frames never overlap
        shift = boxes[:, 5] * (np.abs(boxes[:, :4]).max(initial=0) * 4 + 1)
        x1, x2 = x1 + shift, x2 + shift
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-score, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
        ih = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
        inter = np.maximum(iw, 0) * np.maximum(ih, 0)
        if method == "min":
            denom = np.minimum(area[i], area[rest])
        else:
            denom = area[i] + area[rest] - inter
        overlap = np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)
        order = rest[overlap <= threshold]
    return np.array(keep, dtype=np.int64)
