"""Reporting, nothing here trains: records (run folders, the ledger, atomic writes, a device in words), results
(records into pandas, mean +- sd over seeds, "beats beyond the spread"), report (route, gates, verdicts, REPORT.md),
runplots / plots / reportplots (figures of runs, a dataset, the report), learning (the learning curve), figstyle
(footers, legends), reference."""
