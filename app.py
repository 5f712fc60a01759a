"""The remaster web app: ``python app.py``, or the entry point of a Hugging Face Space."""

import logging

from remaster import Enhancer
from remaster.page import build_demo, launch_options

# Before the page starts its downloads in the background, so their messages are formatted like the rest.
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

enhancer = Enhancer()
demo = build_demo(enhancer)

if __name__ == "__main__":
    demo.launch(**launch_options(enhancer.settings))
