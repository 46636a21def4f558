"""stlib: spatio-temporal traffic forecasting (data, models, training loop, records)."""

__version__ = "0.1.0"
