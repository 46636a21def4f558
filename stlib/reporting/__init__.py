"""Reporting: run records on disk, reading them back, the report and every figure; nothing here trains.

records (run folders, the ledger, atomic writes, a device in words), results (records into pandas, mean +- sd over
seeds, the one "beats beyond the spread" rule; python -m stlib.reporting.results), report (the route, gates, speed,
verdicts, REPORT.md), runplots / plots / reportplots (figures of runs, of a dataset, of the report and benchmarks),
figstyle (every figure's footer and legend), reference (the published numbers compared against).
"""
