"""User-facing errors: one line on stderr, exit code 2."""

from __future__ import annotations


class XltError(Exception):
    """A mistake in the user's input (config, file, language code).

    The message must say what is wrong and what to do, on one line, e.g.
    ``XltError("corpus file data/yor.txt is empty — add text or drop 'yor' from data.languages")``.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class DataNotFound(XltError):
    """The data for a task, split or language does not exist (as opposed to existing but being malformed):
    callers that probe which languages have data skip these and let every other error through."""
