"""One way to write a matplotlib figure to disk (headless: the Agg backend)."""

from __future__ import annotations

from pathlib import Path


def save_figure(fig, path: str | Path, *, dpi: int = 120, close: bool = True) -> Path:
    """Lay out (tight, unless the figure has its own layout engine), write (creating folders)
    and close `fig` (unless `close=False`); returns the path."""
    import matplotlib.pyplot as plt

    if fig.get_layout_engine() is None:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # no creation date in a PDF: the same data gives the same file
    fig.savefig(path, dpi=dpi, metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
    if close:
        plt.close(fig)
    return path
