"""Exceptions raised by mlff for bad user input (files, values, options)."""


class MLFFError(Exception):
    """Base class: a problem with user input that mlff reports cleanly."""


class DataError(MLFFError):
    """A dataset file is missing, malformed, or lacks the labels a command needs."""


class ModelFileError(MLFFError):
    """A checkpoint or deployed-model file is missing or not an mlff file."""


class ConfigError(MLFFError):
    """An option or configuration value is invalid."""


class TrainingDivergedError(MLFFError, FloatingPointError):
    """Training produced non-finite weights (learning rate too high, or bad labels)."""


class ModelEvaluationError(MLFFError):
    """A model gave a result that cannot be used (non-finite energies or forces), or was
    asked to evaluate a structure it cannot (two atoms at the same position)."""


class DataWarning(UserWarning):
    """A dataset looks suspicious (``mlff.data.check``) or lies outside a model's training range."""
