"""Figures of what a rule learned, drawn from a finished run's kept model: `sync` (the paper's
Fig. 2), `tsne-m` (Fig. 3), `gradcam` (Fig. 4), `probes` (linear probe per block) and `angles`
(update/BP-gradient angles). One module per figure; `FIGURES` maps names to them."""
from llsbench.figures import angles, gradcam, probes, sync, tsne_m
from llsbench.figures.source import FigureResult, RunSource

FIGURES = {"sync": sync.draw, "tsne-m": tsne_m.draw, "gradcam": gradcam.draw, "probes": probes.draw,
           "angles": angles.draw}

__all__ = ["FIGURES", "FigureResult", "RunSource"]
