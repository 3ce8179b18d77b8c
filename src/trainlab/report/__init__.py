"""Reports of experiments: cells named by their full configuration, tables with ranks, Wilcoxon/Holm,
Friedman/Nemenyi with critical-difference diagrams, learning curves, time-to-target, contour plots of
dynamic-loss sweeps and curvature panels."""
from trainlab.report.cells import config_columns, name_cells
from trainlab.report.markdown import build_report, write_report
from trainlab.report.plots import (
    cd_diagram,
    contour,
    contour_grid,
    curvature_panel,
    expand_records,
    plot_learning_curves,
    records_panel,
    save_figure,
)
from trainlab.report.stats import (
    FriedmanResult,
    PairedTable,
    critical_difference,
    friedman,
    holm,
    mean_ranks,
    nemenyi,
    nemenyi_q,
    paired_table,
    pairwise_wilcoxon,
)
from trainlab.report.tables import learning_curves, summary_table, time_to_target, write_table

__all__ = [
    "FriedmanResult",
    "PairedTable",
    "build_report",
    "cd_diagram",
    "config_columns",
    "contour",
    "contour_grid",
    "critical_difference",
    "curvature_panel",
    "expand_records",
    "friedman",
    "holm",
    "learning_curves",
    "mean_ranks",
    "name_cells",
    "nemenyi",
    "nemenyi_q",
    "paired_table",
    "pairwise_wilcoxon",
    "plot_learning_curves",
    "records_panel",
    "save_figure",
    "summary_table",
    "time_to_target",
    "write_report",
    "write_table",
]
