"""User-facing errors: one line that names the problem and the fix.

Anything a user can cause (a path, a config value, a malformed data file, an unknown name) raises
`BertbenchError`; the CLI prints its message on one line and exits 2 (1 is `check`'s regression). Tracebacks are for bugs.
"""

import difflib


class BertbenchError(Exception):
    """An error the user can fix; `str(err)` is the whole one-line message."""

    exit_code = 2  # every user error; 1 is reserved for `check` finding a regression


class ConfigError(BertbenchError):
    """Invalid configuration: unknown key, wrong type, impossible combination."""


def did_you_mean(name, choices):
    """' (did you mean 'x'?)' for the closest of `choices`, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_name(kind, name, choices):
    """A BertbenchError for an unknown registry name, listing the valid ones."""
    valid = ", ".join(sorted(str(c) for c in choices))
    return BertbenchError(f"unknown {kind} '{name}'{did_you_mean(name, choices)}; choose one of: {valid}")
