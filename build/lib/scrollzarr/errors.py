"""The one exception type our scripts report to users."""


class ScrollError(Exception):
    """A problem with the user's input or options.

    The message is one line that names the file or option at fault; the scripts print it
    as ``error: <message>`` and exit with status 1, without a traceback.
    """
