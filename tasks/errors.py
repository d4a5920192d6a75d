"""The error users see: one line saying what is wrong and where."""


class ReviewflowError(Exception):
    """A problem with the user's input or environment (not a bug); its message is one line."""
