"""aggregator: pulls articles from many sources, cleans and dedupes them, republishes feeds."""

__version__ = "0.1.0"
