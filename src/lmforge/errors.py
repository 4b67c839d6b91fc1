"""The one exception type for user mistakes.

Raise `LmforgeError` (or a subclass) for anything a user can fix: a missing file, a corrupt
checkpoint, an unknown option value. The command line prints its message as one line on stderr
and exits non-zero, without a traceback. Programming errors stay ordinary exceptions.
"""


class LmforgeError(Exception):
    """A user-facing error; its message names the offending input."""
