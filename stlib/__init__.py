"""stlib: spatio-temporal traffic forecasting.

config (params files -> RunConfig), data, models, training (the loop), studies (benchmarks and ablations),
reporting (run records, reading them back, the report, figures); docs/ARCHITECTURE.md maps them."""

__version__ = "0.1.0"
