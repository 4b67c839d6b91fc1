"""The one exception type for user mistakes.

Raise `LmforgeError` (or a subclass) for anything a user can fix: a missing file, a corrupt
checkpoint, an unknown option value. The command line prints its message as one line on stderr
and exits non-zero, without a traceback. Programming errors stay ordinary exceptions.
"""


class LmforgeError(Exception):
    """A user-facing error; its message names the offending input."""


def naming(source: object, error: LmforgeError) -> LmforgeError:
    """`error` with `source` in front, unless its message already names it.

    For errors raised where the input is unknown (e.g. ModelConfig.validate) and re-raised by the
    loader that knows which file they came from: ``raise naming(path, e) from e``.
    """
    if str(source) in str(error):
        return error
    return LmforgeError(f"{source}: {error}")
