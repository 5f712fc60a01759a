"""``python -m tests.slow_video_job CLIP TARGET``: a lossless video job that goes slowly (0.2 s a frame), to be killed.

Lossless: libx264 does not always give the same bytes for the same frames (here 3 of 750 runs of a tiny clip
differed, with the same options and input planes), and the resumed file is compared byte for byte.
"""

import sys
import time

from remaster import Enhancer, Options, Settings
from remaster.video import VideoOptions, remaster_video

if __name__ == "__main__":
    enhancer = Enhancer(Settings.from_env(device="cpu"))
    options, video = Options("realesr-animevideov3", outscale=2), VideoOptions(codec="ffv1")
    remaster_video(sys.argv[1], sys.argv[2], options, video, enhancer=enhancer, segment_frames=2,
                   progress=lambda fraction, desc: time.sleep(0.2))  # fmt: skip
