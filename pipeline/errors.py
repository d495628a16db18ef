"""The one exception type a person reads: a single line saying where, what was found and the fix."""


class UserError(Exception):
    """Bad input, config or environment. The CLI prints ``str(err)`` as one line and exits 2."""

    def __init__(self, message: str):
        if "\n" in message:
            message = " ".join(message.split())
        super().__init__(message)
