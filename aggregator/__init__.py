"""Turkish news feed aggregator: seed scrapes and web sources in, RSS 2.0 and Atom 1.0 out."""

__version__ = "0.1.0"
USER_AGENT = f"haber-aggregator/{__version__} (+https://pypi.org/project/haber-aggregator/)"
