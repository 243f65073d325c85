"""Figures for every report: a headless figure, and one way to finish and write it as PNG."""
from __future__ import annotations


def subplots(*args, **kwargs):
    """matplotlib's `plt.subplots` on the headless Agg backend: (figure, axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def finish(fig, out, title: str = "") -> None:
    """Title, tight layout, write PNG to `out` (a path or a binary file object), close."""
    import matplotlib.pyplot as plt

    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=90)
    plt.close(fig)
