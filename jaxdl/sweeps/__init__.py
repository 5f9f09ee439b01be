"""Sweeps, searches and what comes of them: members, Optuna studies, reports with intervals, plots."""
