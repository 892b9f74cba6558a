"""Reports: a suite's runs read back from MLflow into the paper-style table and figures."""
from llsbench.reports.collect import finished_cells, metric_curves
from llsbench.reports.table import cell_frame, formatted, summarise
from llsbench.reports.write import Report, write_report

__all__ = ["Report", "cell_frame", "finished_cells", "formatted", "metric_curves", "summarise", "write_report"]
