"""Reporting: run records on disk, reading them back, the report and every figure (all drawing lives here).

The trainer writes through records only; nothing here trains.

- records    outputs/runs/<stage>/<run-id>/ and outputs/ledger.csv, every file written atomically
- results    run records read back into pandas (the ledger, many runs, exports of committed runs), and the one
             path from runs to mean +- sd over seeds (metrics_table / from_export -> seed_summary):
             python -m stlib.reporting.results
- report     the roadmap's route as measured (MAE per stage, gates, speed, verdicts) and REPORT.md
- runplots   figures of training runs: learning curves, error by horizon, forecasts, speed, ablations
- plots      figures of a dataset: series, calendar, graph, missing values
- reportplots figures of the report and the committed benchmarks: the route, cost per stage, accuracy
              against training time, cost against the number of sensors
- figstyle   what every figure says (dataset, device, unit) and where its legend goes
- reference  the published reference numbers (roadmap, peers) the report compares against
"""
