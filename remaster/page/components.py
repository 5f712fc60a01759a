"""remaster's own Gradio components."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from .. import image_io
from ..animation import read_animation
from ..errors import RemasterError
from .handlers import refused

__all__ = ["ImageUpload"]


class ImageUpload(gr.Image):
    """``gr.Image`` that turns a file Gradio itself cannot open into remaster's own clear message."""

    is_template = True
    max_pixels: int = 1 << 62
    """The input limit its messages name (``REMASTER_MAX_INPUT_PIXELS``); set by the page after making it."""

    def preprocess(self, payload):  # noqa: ANN001, ANN201 - Gradio's own signature
        try:
            return super().preprocess(payload)
        except Exception as error:  # noqa: BLE001 - Gradio opens the upload with PIL; anything PIL raises lands here
            # Let remaster's own reading say what is wrong: the same words as the command line's.
            path = Path(payload.path)
            try:
                image_io.decode(path, max_pixels=self.max_pixels)
                read_animation(path, max_pixels=self.max_pixels)
            except RemasterError as precise:
                raise refused(str(precise)) from None
            raise refused(str(image_io.unreadable(error, path))) from None
