"""The YAML config: loaded with line numbers kept, validated strictly, errors located.

Every problem is reported as `file:line:col: key.path: message` (all of them at once), unknown
keys are errors, and relative paths resolve against the config file's own folder.

    model.py       every key: types, defaults, checks (pydantic)
    units.py       durations (15m, 1h30m) and sizes (5MB), read and written
    output_dir.py  which folder may be the output folder, and what render names there
    loader.py      YAML to a validated Config, or ConfigError listing every problem
    bounds.py      the YAML text's size, characters, depth and aliases, checked first
    hints.py       "did you mean" for mistyped keys and values
    preflight.py   what `check` adds: what a run would hit on this machine (folders, writes)
    edit.py        sources added, removed, enabled in the YAML text, byte for byte elsewhere
    opml.py        OPML import and export of feed sources
"""

from aggregator.config.loader import config_path, load_config
from aggregator.config.model import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_PATH,
    CleanRules,
    Config,
    DedupeConfig,
    Defaults,
    OutputConfig,
    RuleConfig,
    ServerConfig,
    SourceConfig,
    StoreConfig,
)
from aggregator.config.output_dir import OUTPUT_MARKER
from aggregator.config.units import format_duration, parse_duration, parse_size

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_PATH",
    "OUTPUT_MARKER",
    "CleanRules",
    "Config",
    "DedupeConfig",
    "Defaults",
    "OutputConfig",
    "RuleConfig",
    "ServerConfig",
    "SourceConfig",
    "StoreConfig",
    "config_path",
    "format_duration",
    "load_config",
    "parse_duration",
    "parse_size",
]
