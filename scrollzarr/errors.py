"""The one exception type our scripts report to users."""


class ScrollError(Exception):
    """A problem with the user's input or options.

    The message is one line that names the file or option at fault; the scripts print it
    as ``error: <message>`` and exit with status 1, without a traceback.
    """


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGINT = Ctrl-C, or SIGTERM).

    ``signum`` is the signal number (the scripts exit with ``128 + signum``: 130 for
    SIGINT, 143 for SIGTERM); ``message`` says what was saved and how to continue (one
    line, may be empty). A subclass of KeyboardInterrupt, so every cleanup written for
    Ctrl-C also runs for SIGTERM.
    """

    def __init__(self, signum: int, message: str = ""):
        super().__init__(signum, message)
        self.signum = signum
        self.message = message
