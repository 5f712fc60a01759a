"""The remaster web app: ``python app.py``, or the entry point of a Hugging Face Space."""

import logging

from remaster import Enhancer
from remaster.page import build_demo, launch_options

enhancer = Enhancer()
demo = build_demo(enhancer)

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    demo.launch(**launch_options(enhancer.settings))
