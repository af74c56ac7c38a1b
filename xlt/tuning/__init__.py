"""Optuna studies over ``xlt fit`` recipes (``xlt sweep``): the search space addressed by config paths, objectives
from logged validation metrics, pruning, RDB storage with heartbeats, one MLflow child run per trial."""
