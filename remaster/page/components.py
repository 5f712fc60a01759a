"""remaster's own Gradio components."""

from __future__ import annotations

import gradio as gr
from PIL import Image

from .. import image_io
from ..errors import RemasterError

__all__ = ["ImageUpload"]


class ImageUpload(gr.Image):
    """``gr.Image`` that turns a file Gradio itself cannot open into remaster's own clear message."""

    is_template = True

    def preprocess(self, payload):  # noqa: ANN001, ANN201 - Gradio's own signature
        try:
            return super().preprocess(payload)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            # Gradio opens the upload with PIL first; let remaster's decoder say what is wrong.
            try:
                image_io.decode(payload.path, max_pixels=1 << 62)
            except RemasterError as precise:
                raise gr.Error(str(precise)) from None
            raise gr.Error(f"The uploaded file could not be read as an image ({error})") from None
