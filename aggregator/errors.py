"""The exception tree every caller can rely on.

    AggregatorError
    ├── ConfigError        config.yaml is missing, unreadable or invalid (names the key)
    ├── SourceError        one input could not be used; the run goes on without it
    │   ├── FetchError     the network or the server failed us
    │   └── ParseError     the bytes are not an article/feed we can read
    ├── StoreError         the SQLite state is unusable (corrupt, newer schema, unwritable)
    ├── LockError          another run holds the state lock
    └── PublishError       the output directory cannot be written
        └── OutputIncomplete  some derived feeds could not be written; the rest was

Third-party exceptions are translated where they enter; anything else is a bug.
"""


class AggregatorError(Exception):
    """Base of every expected failure."""


class ConfigError(AggregatorError):
    pass


class SourceError(AggregatorError):
    pass


class FetchError(SourceError):
    pass


class ParseError(SourceError):
    pass


class StoreError(AggregatorError):
    pass


class LockError(AggregatorError):
    pass


class PublishError(AggregatorError):
    pass


class OutputIncomplete(PublishError):
    """A category, source or named feed (or an article page) could not be written; the
    combined feed, the index and every other file were. `failures`: one line per feed;
    `folders`: the folders (e.g. "sources/x/", "articles/") where something failed."""

    def __init__(
        self, written: list[str], failures: list[str], folders: tuple[str, ...] = ()
    ) -> None:
        super().__init__(f"{len(failures)} feed(s) not written (the rest is published): "
                         + "; ".join(failures[:3]))  # fmt: skip
        self.written = written
        self.failures = failures
        self.folders = folders
