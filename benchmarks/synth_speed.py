"""Videos per second of `pipelines.synth` (video + serialized record, no file I/O), per frame model.

    .venv/bin/python benchmarks/synth_speed.py [--videos 200] [--before OLD_SYNTH.py]

`--before` also times another version of the module (e.g. `git show
1d6c89e:pipelines/synth.py > /tmp/synth_before.py`) on its default config, side by
side in the same process. Best of 3 passes over the same videos (seed 0, 100 classes,
30:300 frames).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from pipelines import synth  # noqa: E402


def videos_per_second(module, config, passes: int = 3) -> float:
    synthesizer = module.VideoSynthesizer(config)
    synthesizer.record(synthesizer.video(0))  # tables and caches built outside the clock
    best = 0.0
    for _ in range(passes):
        started = time.perf_counter()
        for index in range(config.videos):
            synthesizer.record(synthesizer.video(index))
        best = max(best, config.videos / (time.perf_counter() - started))
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--before", metavar="FILE", help="an earlier pipelines/synth.py to time beside")
    args = parser.parse_args(argv)
    rows = []
    if args.before:
        spec = importlib.util.spec_from_file_location("synth_before", args.before)
        before = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = before  # dataclasses look their module up there
        spec.loader.exec_module(before)
        rows.append((f"{args.before} (default)", before, before.SynthConfig(videos=args.videos)))
    for model in synth.FRAME_MODELS:
        config = dataclasses.replace(synth.SynthConfig(videos=args.videos), frame_model=model)
        rows.append((f"pipelines/synth.py --frame-model {model}", synth, config))
    for name, module, config in rows:
        print(f"{name:<48} {videos_per_second(module, config):7.0f} videos/s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
