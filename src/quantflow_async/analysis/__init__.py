"""Trades out of the store: pandas DataFrames, Arrow tables, CSV and Parquet files, reports
(pictures, and interactive HTML pages).

pandas, pyarrow, matplotlib and bokeh come with the extra
`pip install 'quantflow-async[analysis]'`; CSV export needs none of them. Importing this
package imports none of them either: each function imports what it needs, and says which
extra to install when it is missing.
"""

from quantflow_async.analysis._extras import INSTALL_HINT, MissingExtra
from quantflow_async.analysis._files import check_output
from quantflow_async.analysis.export import FORMATS, ExportFormat, export_trades, format_of
from quantflow_async.analysis.frames import (
    TRADE_FIELDS,
    arrow_schema,
    stream_to_arrow,
    stream_to_dataframe,
    trades_to_arrow,
    trades_to_dataframe,
)
from quantflow_async.analysis.report import (
    IMAGE_FORMATS,
    Report,
    draw_report,
    image_format,
    load_report,
    report_format,
    write_report,
)

__all__ = [
    "ExportFormat",
    "FORMATS",
    "IMAGE_FORMATS",
    "INSTALL_HINT",
    "MissingExtra",
    "Report",
    "TRADE_FIELDS",
    "arrow_schema",
    "check_output",
    "draw_report",
    "export_trades",
    "format_of",
    "image_format",
    "load_report",
    "report_format",
    "stream_to_arrow",
    "stream_to_dataframe",
    "trades_to_arrow",
    "trades_to_dataframe",
    "write_report",
]
