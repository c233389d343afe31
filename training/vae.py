"""`python -m training.vae`: DeepLearningExamples' VAE-CF command, kept as an alias.

`python -m training.vae [FLAGS]` is `python -m training --model multvae [FLAGS]` (the DLE VAE-CF flag
names are aliases there), and `python -m training.vae recommend [FLAGS]` is `python -m training.recommend`.
"""
from __future__ import annotations

import sys

from . import train
from .tasks import default_for_layout


def _with_model(argv) -> list[str]:
    """The flags with --model the lists layout's family (VAE-CF's) unless one is given."""
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    given = "--model" in argv or any(a.startswith("--model=") for a in argv)
    return argv if given else ["--model", default_for_layout()["lists"], *argv]


def run(argv=None) -> dict:
    return train.run(_with_model(argv))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["recommend"]:
        from .recommend import main as recommend

        return recommend(argv[1:])
    return train.main(_with_model(argv))


if __name__ == "__main__":
    sys.exit(main())
