"""Exceptions raised by mlff for bad user input (files, values, options)."""


class MLFFError(Exception):
    """Base class: a problem with user input that mlff reports cleanly."""


class DataError(MLFFError):
    """A dataset file is missing, malformed, or lacks the labels a command needs."""


class ModelFileError(MLFFError):
    """A checkpoint or deployed-model file is missing or not an mlff file."""


class ConfigError(MLFFError):
    """An option or configuration value is invalid."""
