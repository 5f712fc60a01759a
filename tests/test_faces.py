"""Face restoration with tiny random-weight GFPGAN, RestoreFormer, RetinaFace and ParseNet networks."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

import remaster
from remaster import Options
from remaster.faces import FACE_SIZE, FACE_TEMPLATE, Face, align_face, paste_face

from . import images
from .hubserver import Fault


def _similar_to_template(scale: float, degrees: float, centre: tuple[float, float]) -> np.ndarray:
    """Landmarks of a face shaped exactly like the template: scaled, turned and moved."""
    angle = np.deg2rad(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return ((FACE_TEMPLATE - 256) @ rotation.T * scale + centre).astype(np.float32)


# A face about 20 pixels between the eyes, turned 8°, in a 96×128 (height × width) image.
LANDMARKS = _similar_to_template(0.18, 8, (61.0, 48.0))


def faces_options() -> Options:
    return Options(model="tiny-srvgg", face_enhance=True, face_model="tiny-gfpgan")


@pytest.fixture
def faces_enhancer(enhancer, tiny_faces):
    """The shared enhancer with the tiny face networks registered."""
    return enhancer


@pytest.fixture
def with_face(faces_enhancer, monkeypatch):
    """Feed known landmarks in where detected ones enter the pipeline (random detectors find no faces)."""

    def use(*faces: Face) -> None:
        monkeypatch.setattr(faces_enhancer.faces, "detect", lambda source, on_wait=None: list(faces))

    return use


@pytest.mark.parametrize(
    ("make", "mode"),
    [
        (lambda: images.rgb(40, 48), "RGB"),
        (lambda: images.rgba(40, 48), "RGBA"),
        (lambda: images.gray(40, 48), "L"),
        (lambda: images.gray_alpha(40, 48), "LA"),
        (lambda: images.palette(40, 48, transparent=True), "RGBA"),
        (lambda: images.rgb(5, 7), "RGB"),
    ],
    ids=["RGB", "RGBA", "L", "LA", "P", "tiny"],
)
def test_every_image_mode_runs_through_face_restoration(faces_enhancer, make, mode):
    source = make()
    result, report = faces_enhancer.run(source, faces_options())
    assert result.mode == mode and result.size == (source.width * 4, source.height * 4)
    assert report.faces_found == 0 and "no face found" in report.summary()
    plain = faces_enhancer.enhance(source, model="tiny-srvgg")
    assert np.array_equal(np.asarray(result), np.asarray(plain)), "no face: exactly the plain upscale"


@pytest.mark.parametrize("channels", [1, 3])
def test_sixteen_bit_input_stays_sixteen_bit_with_faces(faces_enhancer, with_face, tmp_path, channels):
    path = tmp_path / "portrait16.png"
    images.png16(path, channels, height=96, width=128)
    with_face(Face(LANDMARKS))
    result, report = faces_enhancer.run(path, faces_options())
    pixels = np.asarray(result)
    assert pixels.dtype == np.uint16 and pixels.shape[:2] == (384, 512)
    assert report.faces_restored == 1


@pytest.mark.integration
@pytest.mark.parametrize("face_model", ["tiny-gfpgan", "tiny-restoreformer"])
def test_strength_zero_is_the_plain_upscale_exactly_and_strength_changes_the_face(
    faces_enhancer, with_face, face_model
):
    image = images.to_uint8(images.gradient(96, 128))
    plain = faces_enhancer.enhance(image, model="tiny-srvgg")
    with_face(Face(LANDMARKS))
    untouched, report = faces_enhancer.run(
        image, Options(model="tiny-srvgg", face_enhance=True, face_model=face_model, face_strength=0.0)
    )
    assert np.array_equal(untouched, plain)
    half = faces_enhancer.enhance(
        image, model="tiny-srvgg", face_enhance=True, face_model=face_model, face_strength=0.5
    )
    full = faces_enhancer.enhance(
        image, model="tiny-srvgg", face_enhance=True, face_model=face_model, face_strength=1.0
    )
    changed = np.abs(full.astype(int) - plain.astype(int)).max(axis=2) > 0
    ys, xs = np.nonzero(changed)
    assert changed.any(), "the face region was replaced"
    # Only around the face, centred on it (input (61, 48), ×4 in the output).
    assert abs(xs.mean() - 4 * 61) < 30 and abs(ys.mean() - 4 * 48) < 40
    assert not changed[:40, :40].any() and not changed[-40:, -40:].any()
    between = np.abs(half.astype(int) - plain.astype(int)).sum()
    assert 0 < between < np.abs(full.astype(int) - plain.astype(int)).sum()


def _dots(height: int, width: int, points: np.ndarray) -> np.ndarray:
    image = np.full((height, width, 3), 0.5, np.float32)
    colours = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1)]
    for (x, y), colour in zip(points, colours, strict=True):
        cv2.circle(image, (int(round(x)), int(round(y))), 1, colour, -1)
    return image


def _centre_of(image: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    distance = np.abs(image - np.array(colour, np.float32)).sum(axis=2)
    ys, xs = np.nonzero(distance < 0.6)
    weights = 1.0 - distance[ys, xs] / 0.6
    return np.array([np.average(xs, weights=weights), np.average(ys, weights=weights)])


def test_alignment_puts_the_landmarks_on_the_template_and_paste_back_returns_them():
    image = _dots(96, 128, LANDMARKS)
    crop, matrix = align_face(image, LANDMARKS)
    assert crop.shape == (FACE_SIZE, FACE_SIZE, 3)
    colours = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1)]
    for point, colour in zip(FACE_TEMPLATE, colours, strict=True):
        assert np.linalg.norm(_centre_of(crop, colour) - point) < 3, "each landmark lands on its template point"

    target = cv2.resize(np.full((96, 128, 3), 0.5, np.float32), (512, 384), interpolation=cv2.INTER_NEAREST)
    paste_face(target, crop, np.ones((FACE_SIZE, FACE_SIZE), np.float32), matrix, (4.0, 4.0), strength=1.0)
    for (x, y), colour in zip(LANDMARKS, colours, strict=True):
        assert np.linalg.norm(_centre_of(target, colour) - (4 * x + 1.5, 4 * y + 1.5)) < 2.5
    assert np.allclose(target[:20, :20], 0.5) and np.allclose(target[-20:, -20:], 0.5), "only the face area changes"


def test_faces_at_the_border_and_gray_targets_paste_within_the_image():
    at_edge = LANDMARKS - LANDMARKS.min(axis=0) + (-8, -6)  # partly outside the top-left corner
    image = _dots(96, 128, LANDMARKS)
    crop, matrix = align_face(image, at_edge)
    gray = np.full((384, 512, 1), 0.25, np.float32)
    paste_face(gray, np.ones_like(crop), np.ones((FACE_SIZE, FACE_SIZE), np.float32), matrix, (4.0, 4.0), 1.0)
    assert gray.shape == (384, 512, 1) and gray.max() == pytest.approx(1.0, abs=1e-4)
    assert gray[0, 0, 0] > 0.9 and gray[-1, -1, 0] == pytest.approx(0.25)


def test_detections_are_parsed_rescaled_and_sorted_largest_first(finding):
    faces = finding.faces.detect(images.gradient(32, 1600))
    assert len(faces) >= 4
    distances = [face.eye_distance for face in faces]
    assert distances == sorted(distances, reverse=True) and distances[0] > distances[-1]
    template_eyes = (FACE_TEMPLATE[1, 0] - FACE_TEMPLATE[0, 0]) / 512
    assert {round(d / template_eyes) for d in distances} == {256, 512}, (
        "template-shaped faces the size of their anchors"
    )
    for face in faces:
        shape = face.landmarks - face.landmarks.mean(axis=0)
        template = (FACE_TEMPLATE - FACE_TEMPLATE.mean(axis=0)) * face.eye_distance / (template_eyes * 512)
        assert np.abs(shape - template).max() < 0.5 and face.score > 0.97
    # Past 1600 pixels the detector sees the image shrunk; its landmarks come back in the input's pixels.
    doubled = finding.faces.detect(images.gradient(64, 3200))
    assert len(doubled) == len(faces)
    for big, small in zip(doubled, faces, strict=True):
        assert np.allclose(big.landmarks, 2 * small.landmarks, atol=1e-3)
    assert finding.faces.detect(images.gradient(31, 400)) == [], "too small to hold a face"


@pytest.mark.integration
def test_at_most_the_configured_number_of_faces_is_restored_the_largest_and_the_report_says_so(finding):
    capped = finding.with_settings(max_faces=2)
    image = images.gradient(256, 384)
    faces = capped.faces.detect(image)
    assert len(faces) > 2
    options = Options(model="tiny-srvgg", face_enhance=True, face_model="tiny-gfpgan", precision="fp32")
    result, report = capped.run(image, options)
    assert (report.faces_found, report.faces_restored) == (len(faces), 2)
    assert f"2 faces restored of {len(faces)} found" in report.summary() and "REMASTER_MAX_FACES" in report.summary()
    plain = capped.run(image, replace(options, face_enhance=False))[0]
    largest, others = plain.copy(), plain.copy()
    capped.faces.restore(image, largest, faces[:2], options)
    capped.faces.restore(image, others, faces[-2:], options)
    assert np.array_equal(result, largest), "the two largest faces were the ones restored"
    assert not np.array_equal(result, others)


def test_one_face_is_reported_in_the_result_line(faces_enhancer, with_face):
    with_face(Face(LANDMARKS))
    _, report = faces_enhancer.run(images.rgb(96, 128), faces_options())
    assert "1 face restored" in report.summary()


def test_missing_face_weights_name_the_files_and_plain_upscaling_still_works(settings, hub, tiny_models, tiny_faces):
    for name in ("tiny-gfpgan.pth", "detection_Resnet50_Final.pth"):
        hub.faults[hub.hub_path("remaster-tests/tiny-models", f"{name}")] = Fault(status=404)
        hub.faults[f"/releases/{name}"] = Fault(status=404)
    fresh = remaster.Enhancer(settings)
    with pytest.raises(remaster.WeightsUnavailableError) as error:
        fresh.enhance(images.rgb(), model="tiny-srvgg", face_enhance=True, face_model="tiny-gfpgan")
    message = str(error.value)
    assert "tiny-gfpgan.pth is not available" in message and "detection_Resnet50_Final.pth is not available" in message
    assert "REMASTER_WEIGHTS_DIR" in message and "parsing_parsenet" not in message
    assert fresh.engine.cached(), "the face weights were checked before, not after, the upscaling"
    assert fresh.enhance(images.rgb(), model="tiny-srvgg").size == (96, 80)


def test_face_options_are_checked(faces_enhancer):
    with pytest.raises(remaster.UnknownModelError, match="Unknown face model 'GFPGANv9'"):
        faces_enhancer.enhance(images.rgb(), model="tiny-srvgg", face_enhance=True, face_model="GFPGANv9")
    with pytest.raises(remaster.UnknownModelError, match="Unknown model 'tiny-gfpgan'"):
        faces_enhancer.enhance(images.rgb(), model="tiny-gfpgan")
    with pytest.raises(remaster.InvalidOptionError, match="face_strength must be from 0 to 1"):
        faces_enhancer.enhance(images.rgb(), model="tiny-srvgg", face_enhance=True, face_strength=2)


def test_nothing_is_written_to_the_working_folder(faces_enhancer, with_face, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with_face(Face(LANDMARKS))
    faces_enhancer.enhance(images.rgb(96, 128), model="tiny-srvgg", face_enhance=True, face_model="tiny-gfpgan")
    assert list(tmp_path.iterdir()) == []


def test_the_real_detector_code_runs_on_random_weights_and_finds_nothing(faces_enhancer):
    source = images.gradient(120, 160)
    assert faces_enhancer.faces.detect(source) == []
    assert faces_enhancer.faces.detect(source[:10, :10]) == [], "too small to hold a face"
