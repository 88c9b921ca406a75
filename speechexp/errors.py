"""User-facing errors: one sentence naming the problem and the fix, no traceback."""


class SpeechexpError(Exception):
    """An error the user can fix (bad data, bad override, incompatible config).

    Entry points catch it, print its message as a single line and exit non-zero.
    """


class IncompatibleOptions(SpeechexpError):
    """Options that cannot run together (or need an extra that is not installed), found
    before anything runs; entry points exit with :attr:`exit_code` 2, as for a usage error."""

    exit_code = 2
