"""User-facing errors: one sentence naming the problem and the fix, no traceback."""


class SpeechexpError(Exception):
    """An error the user can fix (bad data, bad override, incompatible config).

    Entry points catch it, print its message as a single line and exit non-zero.
    """
