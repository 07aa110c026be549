"""The refusal every participant- and researcher-facing write raises."""


class SurveyRefused(Exception):
    """A write that is refused; ``str(exc)`` is for the user, ``status`` the HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status
