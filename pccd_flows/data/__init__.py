"""Crystal data sets: the bundled MP population, readers and writers, statistics and mp-api fetching."""

from pccd_flows.data.io import read_records, write_records
from pccd_flows.data.records import MaterialRecord

__all__ = ["MaterialRecord", "read_records", "write_records"]
