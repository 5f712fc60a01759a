"""The remaster web app: ``python app.py``, or the entry point of a Hugging Face Space."""

from remaster import Enhancer, logs
from remaster.page import build_demo, launch_options

# Before the page starts its downloads in the background, so their messages come out like the rest.
logs.configure()

enhancer = Enhancer()
demo = build_demo(enhancer)

if __name__ == "__main__":
    demo.launch(**launch_options(enhancer.settings))
