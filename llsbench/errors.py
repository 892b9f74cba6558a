"""User-facing errors: the CLI prints these as one line and exits with code 2."""


class LLSBenchError(Exception):
    """A mistake the user can fix (bad name, bad value, missing data)."""


class UnknownNameError(LLSBenchError, KeyError):
    """A name that is not in a registry; the message lists the valid names."""

    def __init__(self, kind: str, name: str, valid: list[str]):
        self.kind, self.name, self.valid = kind, name, valid
        super().__init__(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(valid) or '(none)'}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class ConfigError(LLSBenchError, ValueError):
    """A configuration value outside what is allowed."""


class DatasetNotFoundError(LLSBenchError, FileNotFoundError):
    """A dataset that is not on disk where we looked."""
