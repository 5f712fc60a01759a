"""Face restoration: find faces, restore each with GFPGAN (or RestoreFormer), paste them back.

The background is upscaled by remaster's own engine; this module only works on the
faces. It follows the official GFPGANer pipeline (RetinaFace landmarks, the 512×512
FFHQ alignment template, a ParseNet mask for a soft paste-back) and avoids its known
faults: every image mode works, half precision is never used on a CPU, faces are
blended by a strength the user controls, and nothing is written to the working folder.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from .engine import Engine
from .errors import WeightsUnavailableError
from .options import Options
from .pixels import to_float
from .registry import DETECTOR, PARSER, get_model

__all__ = [
    "FACE_SIZE",
    "FACE_TEMPLATE",
    "Face",
    "FaceRestorer",
    "align_face",
    "paste_face",
]

log = logging.getLogger(__name__)

FACE_SIZE = 512

# Where the five landmarks (eyes, nose tip, mouth corners) sit in a 512×512 aligned face (FFHQ).
FACE_TEMPLATE = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float32,
)
_BORDER = (132 / 255, 133 / 255, 135 / 255)  # the neutral gray the official pipeline pads crops with (RGB)
# ParseNet's 19 classes kept in the paste-back mask: the face and hair, not background, neck or clothes.
_PARSE_KEEP = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 0], dtype=np.float32)
_DETECTION_THRESHOLD = 0.97
_MIN_EYE_DISTANCE = 5.0
_DETECTION_MAX_SIDE = 1600
_MIN_DETECTION_SIDE = 32
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class Face:
    """A face found in the input: its five landmarks in input pixels, and the detector's confidence."""

    landmarks: np.ndarray
    """(5, 2) x, y: left eye, right eye, nose tip, left and right mouth corners."""
    score: float = 1.0

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks[0] - self.landmarks[1]))


def align_face(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 512×512 aligned crop of a face and the 2×3 matrix that maps the image onto it.

    Args:
        image: float32 ``(H, W, 3)`` RGB in 0–1.
        landmarks: (5, 2) in ``image`` pixels.
    """
    matrix, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), FACE_TEMPLATE, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("the landmarks do not define a face")
    crop = cv2.warpAffine(
        image,
        matrix,
        (FACE_SIZE, FACE_SIZE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=_BORDER,
    )
    return crop, matrix


def paste_face(
    target: np.ndarray,
    face: np.ndarray,
    mask: np.ndarray,
    matrix: np.ndarray,
    scale: tuple[float, float],
    strength: float,
) -> None:
    """Blend a 512×512 face back into ``target`` in place, where ``matrix`` took it from.

    Args:
        target: float32 ``(H', W', C)`` in 0–1, C = 1 (gray: the face's luminance is used) or 3:
            the upscaled image, ``scale`` times the size of the image the face was aligned in.
        face: float32 ``(512, 512, 3)`` RGB in 0–1.
        mask: float32 ``(512, 512)`` in 0–1: how much of the face to use at each pixel.
        matrix: from :func:`align_face`.
        scale: (x, y) from input pixels to ``target`` pixels.
        strength: 0 leaves ``target`` unchanged; 1 uses the face fully inside the mask.
    """
    inverse = cv2.invertAffineTransform(matrix)
    sx, sy = scale
    # Input pixel centre i lands on output centre s·i + (s − 1)/2.
    to_target = np.array([[sx, 0, (sx - 1) / 2], [0, sy, (sy - 1) / 2]], dtype=np.float64) @ np.vstack(
        [inverse, [0, 0, 1]]
    )
    corners = np.array([[0, 0, 1], [FACE_SIZE, 0, 1], [0, FACE_SIZE, 1], [FACE_SIZE, FACE_SIZE, 1]], dtype=np.float64)
    placed = corners @ to_target.T
    height, width = target.shape[:2]
    x0, y0 = max(int(np.floor(placed[:, 0].min())), 0), max(int(np.floor(placed[:, 1].min())), 0)
    x1, y1 = min(int(np.ceil(placed[:, 0].max())) + 1, width), min(int(np.ceil(placed[:, 1].max())) + 1, height)
    if x1 <= x0 or y1 <= y0 or strength <= 0:
        return
    local = to_target.copy()
    local[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(face, local, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    weight = cv2.warpAffine(mask, local, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    weight = np.clip(weight, 0.0, 1.0)[:, :, None] * strength
    if target.shape[2] == 1:
        warped = (warped @ _LUMA)[:, :, None]
    region = target[y0:y1, x0:x1]
    region += weight * (warped - region)


def _soft_mask(parsing: np.ndarray) -> np.ndarray:
    """The paste-back mask from ParseNet's class map: face and hair, feathered, zero at the crop's edge."""
    mask = _PARSE_KEEP[parsing]
    mask = cv2.GaussianBlur(mask, (101, 101), 11)
    mask = cv2.GaussianBlur(mask, (101, 101), 11)
    edge = 10
    mask[:edge], mask[-edge:], mask[:, :edge], mask[:, -edge:] = 0, 0, 0, 0
    return mask


class _OneInOneOut(nn.Module):
    """A face network called the way this module always calls it, as one tensor in and one out: what the
    engine's backends convert."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network


class _Restoring(_OneInOneOut):
    """A face restorer (GFPGAN, RestoreFormer): aligned faces in −1–1 to RGB in −1–1, with fixed noise, so
    that the same face gives the same result every time (and a backend can convert it)."""

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.network(faces, return_rgb=False, randomize_noise=False)[0]


class _Parsing(_OneInOneOut):
    """ParseNet: restored faces in −1–1 to the logits of its 19 classes."""

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.network(faces)[0]


class _Detecting(_OneInOneOut):
    """RetinaFace's network: its box, class and landmark outputs side by side."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # The class's own forward: the detector that facexlib's code calls has this object in its place.
        return torch.cat(type(self.network).forward(self.network, image), dim=-1)


_DETECTION_OUTPUTS = (4, 2, 10)
"""What :class:`_Detecting` puts side by side: a box, two class scores, five landmarks for each anchor."""


def _detector_running(detector: nn.Module, network: Callable[[torch.Tensor], torch.Tensor]) -> nn.Module:
    """facexlib's RetinaFace whose detection code runs its network through ``network``. A shallow copy for each
    image: the weights are shared, and the sizes its code keeps on itself are this image's alone."""
    running = copy.copy(detector)
    running.forward = lambda image: network(image).split(_DETECTION_OUTPUTS, dim=-1)
    return running


class FaceRestorer:
    """Finds and restores faces with the models in the registry, on an :class:`Engine`'s device.

    The face networks always run in fp32: GFPGAN's StyleGAN decoder is not made for
    half precision, and half precision on a CPU is slow where it works at all. On a CPU they
    run on OpenVINO where it measures faster, as the upscalers do: the restorer and the parser
    converted for their one size of input, the detector for any.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def prepare(self, model: str, on_wait: Callable[[str], None] | None = None) -> None:
        """Load the detector, the parser and ``model`` now, so a missing file is reported before any work.

        Raises:
            UnknownModelError: ``model`` is not a face model.
            WeightsUnavailableError: a face network's weights could not be found; the message names the file.
        """
        missing = []
        for name, kind in ((model, "face_restorer"), (DETECTOR, "face_detector"), (PARSER, "face_parser")):
            try:
                self.engine.module(get_model(name, kind), on_wait)
            except WeightsUnavailableError as error:
                missing.append(str(error))
        if missing:
            raise WeightsUnavailableError("Face restoration cannot run: " + " ".join(missing))

    def detect(self, image: np.ndarray, on_wait: Callable[[str], None] | None = None) -> list[Face]:
        """Faces in ``image`` (float32 ``(H, W, 3)`` RGB in 0–1), largest first.

        Raises:
            WeightsUnavailableError: the detector's weights could not be found.
        """
        spec = get_model(DETECTOR, "face_detector")
        detector = self.engine.module(spec, on_wait)
        network = self.engine.helper(spec, _Detecting, on_wait, fixed_shape=False)
        height, width = image.shape[:2]
        if min(height, width) < _MIN_DETECTION_SIDE:
            return []
        ratio = min(1.0, _DETECTION_MAX_SIDE / max(height, width))
        small = image if ratio == 1.0 else cv2.resize(image, None, fx=ratio, fy=ratio, interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(small[:, :, ::-1] * 255.0, dtype=np.float32)
        with torch.inference_mode():
            found = _detector_running(detector, network).detect_faces(bgr, conf_threshold=_DETECTION_THRESHOLD)
        faces = [
            Face(landmarks=(row[5:15].reshape(5, 2) / ratio).astype(np.float32), score=float(row[4])) for row in found
        ]
        faces = [face for face in faces if face.eye_distance >= _MIN_EYE_DISTANCE]
        return sorted(faces, key=lambda face: face.eye_distance, reverse=True)

    def enhance(
        self,
        color: np.ndarray,
        target: np.ndarray,
        options: Options,
        max_faces: int,
        progress: Callable[[float, str], None] | None = None,
        check: Callable[[], None] | None = None,
    ) -> tuple[int, int]:
        """Find the faces in ``color`` and blend the largest ``max_faces``, restored, into ``target``.

        Args:
            color: the input's colour channels, ``(H, W, 1)`` or ``(H, W, 3)``, any dtype remaster reads.
            target: float32 ``(H', W', C)`` in 0–1, C as ``color``: the input upscaled; changed in place.
            options: the request's face model and strength.
            max_faces: most faces restored; the largest are.
            progress: told the fraction of this step done and what it is doing.
            check: called between faces; raises to stop the work.

        Returns:
            How many faces were found, and how many restored.
        """
        report = progress or (lambda fraction, message: None)
        if check is not None:
            check()
        report(0.0, "Finding faces")
        source = to_float(color)
        if source.shape[2] == 1:
            source = np.repeat(source, 3, axis=2)
        faces = self.detect(source)
        count = min(len(faces), max_faces)
        # Finding the faces takes seconds too (1.3–2.3 s in a 1024² photo on two cores): a share of its own.
        found = 0.3

        def face_done(fraction: float) -> None:
            if check is not None:
                check()
            report(found + (1 - found) * fraction, f"Restoring faces: {round(fraction * count)} of {count} done")

        if count:
            face_done(0.0)

        restored = self.restore(source, target, faces[:max_faces], options, face_done)
        return len(faces), restored

    def restore(
        self,
        source: np.ndarray,
        target: np.ndarray,
        faces: list[Face],
        options: Options,
        progress: Callable[[float], None] | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> int:
        """Restore ``faces`` of ``source`` and blend them into ``target`` in place.

        Args:
            source: float32 ``(H, W, 3)`` RGB in 0–1, where the faces' landmarks are.
            target: float32 ``(H', W', C)`` in 0–1, C = 1 or 3: ``source`` upscaled.
            faces: from :meth:`detect`, or landmarks known some other way.
            options: ``face_model`` restores each face; ``face_strength`` 0 leaves ``target``
                exactly as it is, 1 uses the restored faces fully.
            progress: told the fraction of faces done.

        Returns:
            How many faces were restored.

        Raises:
            UnknownModelError: ``options.face_model`` is not a face model.
            WeightsUnavailableError: a face network's weights could not be found.
        """
        spec = get_model(options.face_model, "face_restorer")
        if not faces or options.face_strength <= 0:
            return 0
        restorer = self.engine.helper(spec, _Restoring, on_wait)
        parser = self.engine.helper(get_model(PARSER, "face_parser"), _Parsing, on_wait)
        scale = (target.shape[1] / source.shape[1], target.shape[0] / source.shape[0])
        restored = 0
        for index, face in enumerate(faces, start=1):
            try:
                crop, matrix = align_face(source, face.landmarks)
            except ValueError:
                log.warning("Skipping a face whose landmarks define no alignment: %s", face.landmarks.tolist())
                continue
            restored_face = self._run_restorer(restorer, crop)
            mask = self._mask(parser, restored_face)
            paste_face(target, restored_face, mask, matrix, scale, options.face_strength)
            restored += 1
            if progress is not None:
                progress(index / len(faces))
        return restored

    def _run_restorer(self, restorer: Callable[[torch.Tensor], torch.Tensor], crop: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).unsqueeze(0).to(self.engine.device)
        with torch.inference_mode():
            output = restorer(batch * 2 - 1)
            face = ((output.float().clamp(-1, 1) + 1) / 2)[0].permute(1, 2, 0)
        return face.cpu().numpy()

    def _mask(self, parser: Callable[[torch.Tensor], torch.Tensor], face: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(face)).permute(2, 0, 1).unsqueeze(0).to(self.engine.device)
        with torch.inference_mode():
            logits = parser(batch * 2 - 1)
            parsing = logits.argmax(dim=1)[0].cpu().numpy()
        return _soft_mask(parsing)
