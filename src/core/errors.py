"""User-facing errors: raised for bad input, printed without a traceback by the stage runner."""


class PipelineError(Exception):
    """A problem the user can fix (bad params, bad data, missing download); the message says how."""


class ParamsError(PipelineError):
    """params.yaml does not match the schema."""


class DataError(PipelineError):
    """An input data file is missing, empty or malformed."""


class DownloadError(PipelineError):
    """A file could not be fetched, or did not match its pinned checksum."""


class TrainingDiverged(PipelineError):
    """A training or validation loss became NaN or infinite; nothing of that epoch was saved."""
