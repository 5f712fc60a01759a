"""Regenerate the example images from scikit-image's bundled public-domain and CC0 data.

Run from the repository root: ``python examples/make_examples.py``. scikit-image comes
with basicsr, one of remaster's requirements.
"""

from pathlib import Path

from PIL import Image, ImageDraw
from skimage import data

HERE = Path(__file__).resolve().parent


def small(array, size):
    image = Image.fromarray(array)
    image.thumbnail(size, Image.Resampling.LANCZOS)
    return image


def lighthouse_drawing() -> Image.Image:
    """A flat-colour cartoon with black outlines, drawn here (CC0)."""
    scale = 4
    w, h = 160 * scale, 120 * scale
    im = Image.new("RGB", (w, h), (140, 200, 240))
    d = ImageDraw.Draw(im)
    s = scale
    d.ellipse((110 * s, 10 * s, 140 * s, 40 * s), fill=(255, 220, 80), outline=(0, 0, 0), width=2 * s)
    d.polygon(
        [(0, 95 * s), (60 * s, 70 * s), (160 * s, 90 * s), (160 * s, 120 * s), (0, 120 * s)],
        fill=(90, 170, 90),
        outline=(0, 0, 0),
        width=2 * s,
    )
    d.rectangle((0, 100 * s, 160 * s, 120 * s), fill=(40, 110, 190), outline=(0, 0, 0), width=2 * s)
    d.polygon(
        [(40 * s, 85 * s), (48 * s, 30 * s), (64 * s, 30 * s), (72 * s, 85 * s)],
        fill=(245, 245, 245),
        outline=(0, 0, 0),
        width=2 * s,
    )
    for y in (42, 58, 74):
        d.polygon(
            [(46 * s, (y + 6) * s), (47.5 * s, y * s), (64.5 * s, y * s), (66 * s, (y + 6) * s)], fill=(220, 50, 50)
        )
    d.rectangle((44 * s, 20 * s, 68 * s, 30 * s), fill=(255, 240, 150), outline=(0, 0, 0), width=2 * s)
    d.polygon(
        [(42 * s, 20 * s), (56 * s, 10 * s), (70 * s, 20 * s)], fill=(200, 40, 40), outline=(0, 0, 0), width=2 * s
    )
    for x, y in ((20, 20), (90, 30)):
        d.ellipse((x * s, y * s, (x + 20) * s, (y + 8) * s), fill=(255, 255, 255), outline=(0, 0, 0), width=s)
    return im.resize((w // (2 * scale), h // (2 * scale)), Image.Resampling.BILINEAR)


def anime_frame() -> Image.Image:
    """A cel-shaded cartoon face, as in an anime frame, drawn here (CC0)."""
    scale = 4
    w, h = 96 * scale, 72 * scale
    im = Image.new("RGB", (w, h), (250, 214, 165))
    d = ImageDraw.Draw(im)
    s = scale
    d.rectangle((0, 0, w, 30 * s), fill=(120, 180, 235))
    d.ellipse((28 * s, 10 * s, 68 * s, 58 * s), fill=(255, 224, 196), outline=(60, 40, 40), width=s)
    d.pieslice((24 * s, 4 * s, 72 * s, 44 * s), 180, 360, fill=(90, 60, 140), outline=(40, 20, 60), width=s)
    for x in (36, 52):
        d.ellipse((x * s, 28 * s, (x + 9) * s, 40 * s), fill=(255, 255, 255), outline=(40, 30, 30), width=s)
        d.ellipse(((x + 2) * s, 30 * s, (x + 8) * s, 39 * s), fill=(70, 110, 200))
        d.ellipse(((x + 4) * s, 31 * s, (x + 6) * s, 33 * s), fill=(255, 255, 255))
    d.arc((42 * s, 42 * s, 54 * s, 50 * s), 20, 160, fill=(150, 50, 60), width=s)
    d.ellipse((31 * s, 41 * s, 37 * s, 45 * s), fill=(250, 170, 170))
    d.ellipse((59 * s, 41 * s, 65 * s, 45 * s), fill=(250, 170, 170))
    return im.resize((w // (2 * scale), h // (2 * scale)), Image.Resampling.BILINEAR)


def evaluation_set() -> None:
    """Three 256×256 high-resolution crops for ``python -m remaster.evaluate examples/eval``.

    256 pixels leave, after the border crop, the two 96-pixel blocks each way that NIQE needs.
    """
    folder = HERE / "eval"
    folder.mkdir(exist_ok=True)
    Image.fromarray(data.astronaut()[20:276, 110:366]).save(folder / "astronaut.png")
    Image.fromarray(data.chelsea()[30:286, 80:336]).save(folder / "chelsea.png")
    Image.fromarray(data.coffee()[90:346, 180:436]).save(folder / "coffee.png")


def main() -> None:
    evaluation_set()
    small(data.astronaut(), (128, 128)).save(HERE / "photo_astronaut.jpg", quality=70)
    small(data.coffee(), (160, 120)).save(HERE / "photo_coffee.jpg", quality=40)
    lighthouse_drawing().save(HERE / "drawing_lighthouse.png")
    anime_frame().save(HERE / "anime_frame.png")
    text = Image.fromarray(data.text())
    text.resize((text.width // 3, text.height // 3), Image.Resampling.BILINEAR).save(HERE / "scan_text.png")


if __name__ == "__main__":
    main()
