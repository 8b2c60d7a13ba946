"""config.yaml -> validated, frozen settings. Every error names the key and the problem."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from aggregator.dedupe import site_host
from aggregator.errors import ConfigError
from aggregator.normalize import path_slug

SOURCE_TYPES = ("seeds", "feed", "html")
HTML_FIELDS = ("title", "summary", "author", "published", "updated", "content")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TOP_KEYS = ("site", "output", "state", "server", "sources", "feeds", "retention", "log_level",
            "fetch", "cluster")  # fmt: skip
SITE_KEYS = ("title", "url", "language", "timezone")
OUTPUT_KEYS = ("dir", "max_items", "archive")
SERVER_KEYS = ("host", "port")
SOURCE_KEYS = (
    "name", "type", "path", "url", "every", "links", "limit", "selectors", "fetch", "fulltext",
    "site",
)  # fmt: skip
FEED_KEYS = ("name", "title", "sources", "categories", "match")
FETCH_KEYS = ("allow_hosts", "block_private")
CLUSTER_KEYS = ("node", "lease")
# cluster.lease, seconds. A lease renewal is cut off after a quarter of the lease
# (cluster.lease_timeout): at least 1 s for a transaction over the network.
LEASE_BOUNDS = (4.0, 3600.0)
STATE_KEYS = ("url", "password_env")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def config_keys() -> list[str]:
    """Every key config.yaml accepts, as README's configuration tables spell it."""
    keys = [k for k in TOP_KEYS if k not in ("site", "output", "server", "fetch", "cluster")]
    keys += [f"site.{k}" for k in SITE_KEYS] + [f"output.{k}" for k in OUTPUT_KEYS]
    keys += [f"server.{k}" for k in SERVER_KEYS] + [f"fetch.{k}" for k in FETCH_KEYS]
    keys += [f"cluster.{k}" for k in CLUSTER_KEYS]
    keys += [f"state.{k}" for k in STATE_KEYS]
    keys += [f"sources[].{k}" for k in SOURCE_KEYS] + [f"feeds[].{k}" for k in FEED_KEYS]
    return keys


@dataclass(frozen=True, kw_only=True)
class FetchConfig:
    """Where a web source may fetch from (README, "Fetch policy"): its own host and
    `allow_hosts`; private addresses refused for the configured URL and/or for the links
    found on pages."""

    allow_hosts: tuple[str, ...] = ()
    block_private_configured: bool = False
    block_private_links: bool = True


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """This daemon as a node of several on one PostgreSQL store (README, "Several nodes").
    `node`: "" means `<hostname>-<pid>`, chosen at start."""

    node: str = ""
    lease: float = 30.0


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    name: str
    type: str
    every: float
    path: Path | None = None
    url: str | None = None
    links: str | None = None
    limit: int = 20
    selectors: tuple[tuple[str, str], ...] = ()
    fetch: FetchConfig = field(default_factory=FetchConfig)
    fulltext: bool = False
    """feed sources: publish each new item's page body (see sources/fulltext.py)."""
    site: str = ""  # seeds: the host its scrapes come from (dedupe.site_host form)


@dataclass(frozen=True, kw_only=True)
class FeedConfig:
    """A named filtered feed: articles matching every filter given (each one any-of)."""

    name: str
    title: str
    sources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()  # slugs
    match: tuple[str, ...] = ()  # words or phrases, matched in title or summary


@dataclass(frozen=True, kw_only=True)
class Config:
    path: Path
    title: str
    site_url: str
    language: str
    timezone: ZoneInfo
    output_dir: Path
    max_items: int
    state: Path
    state_url: str | None = None
    """A PostgreSQL store: its URL, with the password from `state.password_env` in it
    (None: SQLite at `state`)."""
    host: str
    port: int
    retention: float | None
    log_level: str
    sources: tuple[SourceConfig, ...] = field(default=())
    feeds: tuple[FeedConfig, ...] = field(default=())
    archive: bool = False
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    @property
    def store_target(self) -> Path | str:
        """What `Store.open` takes: the PostgreSQL URL, else the SQLite file."""
        return self.state_url or self.state


def parse_duration(value: object, key: str) -> float:
    """`300`, `30s`, `5m`, `1h`, `2d` -> seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration like 30s, 5m or 1h, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ConfigError(f"{key}: expected a duration like 30s, 5m or 1h, got {value!r}")
    if seconds <= 0:
        raise ConfigError(f"{key}: must be greater than zero, got {value!r}")
    return seconds


def _take(data: dict[str, Any], key: str, prefix: str, kind: type | tuple[type, ...],
          default: Any = ...) -> Any:  # fmt: skip
    full = f"{prefix}{key}"
    if key not in data or data[key] is None:
        if default is ...:
            raise ConfigError(f"{full}: required key is missing")
        return default
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{full}: expected {names}, got {value!r}")
    return value


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping of settings, got {value!r}")
    return value


def _unknown(data: dict[str, Any], allowed: set[str], prefix: str) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{prefix}{key}: unknown key (allowed: {', '.join(sorted(allowed))})")


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (YAML's last-one-wins would
    silently drop the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) and key in first:
                raise ConfigError(
                    f"line {line}: the key {key!r} is given twice (first on line "
                    f"{first[key]}); keep one of them"
                )
            first.setdefault(key, line)
        return super().construct_mapping(node, deep=deep)


def _yaml(text: str, path: Path) -> object:
    """The document, or one line naming the file, line and column of the first problem."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except ConfigError as e:
        raise ConfigError(f"{path}:{e}".replace(":line ", ":")) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = " ".join(p for p in (e.context, e.problem) if p)
        raise ConfigError(f"{where}: not valid YAML: {problem}".replace("\n", " ")) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}".replace("\n", " ")) from None


def load_config(path: Path, *, given: bool = True) -> Config:
    """`given`: the path came from --config (else it is the default ./config.yaml)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        how = ("check the --config path" if given else "run in the folder that holds "
               "config.yaml, or pass --config PATH (before or after the command)")  # fmt: skip
        raise ConfigError(f"{path}: no such config file ({how})") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: config is not UTF-8 text: {e.reason}") from e
    data = _yaml(text, path)
    if data is None:
        raise ConfigError(f"{path}: the config file is empty (README, \"Configuration\", "
                          "has a complete example)")  # fmt: skip
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings (key: value lines) at "
                          "the top level")  # fmt: skip
    try:
        return _build(path.resolve(), data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def _build(path: Path, data: dict[str, Any]) -> Config:
    base = path.parent
    _unknown(data, set(TOP_KEYS), "")
    site, output, server = (
        _section(data, "site"),
        _section(data, "output"),
        _section(data, "server"),
    )
    _unknown(site, set(SITE_KEYS), "site.")
    _unknown(output, set(OUTPUT_KEYS), "output.")
    _unknown(server, set(SERVER_KEYS), "server.")

    site_url = _take(site, "url", "site.", str, "http://127.0.0.1:8080/")
    _http_url(site_url, "site.url")
    if not site_url.endswith("/"):
        site_url += "/"
    tz_name = _take(site, "timezone", "site.", str, "Europe/Istanbul")
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"site.timezone: unknown time zone {tz_name!r}") from None
    max_items = _take(output, "max_items", "output.", int, 50)
    if not 1 <= max_items <= 10000:
        raise ConfigError(f"output.max_items: must be between 1 and 10000, got {max_items}")
    port = _take(server, "port", "server.", int, 8080)
    if not 0 <= port <= 65535:
        raise ConfigError(f"server.port: must be between 0 and 65535, got {port}")
    retention_raw = data.get("retention", "90d")
    retention = None if retention_raw in ("never", 0, "0") else parse_duration(
        retention_raw, "retention")  # fmt: skip
    log_level = _take(data, "log_level", "", str, "info").lower()
    if log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"log_level: expected debug, info, warning or error, got {log_level!r}")

    raw_sources = data.get("sources")
    if raw_sources is None:
        raw_sources = []
    if not isinstance(raw_sources, list):
        raise ConfigError("sources: expected a list of sources")
    fetch = fetch_config(data.get("fetch"), "fetch.", FetchConfig())
    sources: list[SourceConfig] = []
    for i, raw in enumerate(raw_sources):
        source = _source(raw, f"sources[{i}].", base)
        sources.append(_source_fetch(source, raw, f"sources[{i}].", fetch))
    names = [s.name for s in sources]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"sources: the name {name!r} is used twice; names must be unique")
    raw_feeds = data.get("feeds")
    if raw_feeds is None:
        raw_feeds = []
    if not isinstance(raw_feeds, list):
        raise ConfigError("feeds: expected a list of named feeds")
    feeds = tuple(_feed(raw, f"feeds[{i}].", set(names)) for i, raw in enumerate(raw_feeds))
    feed_names = [f.name for f in feeds]
    for name in feed_names:
        if feed_names.count(name) > 1:
            raise ConfigError(f"feeds: the name {name!r} is used twice; names must be unique")

    state, state_url = _state(data.get("state"), base)
    return Config(
        path=path,
        title=_take(site, "title", "site.", str, "Haber Akışı"),
        site_url=site_url,
        language=_take(site, "language", "site.", str, "tr"),
        timezone=tz,
        output_dir=(base / _take(output, "dir", "output.", str, "feeds")).resolve(),
        max_items=max_items,
        state=state,
        state_url=state_url,
        host=_take(server, "host", "server.", str, "127.0.0.1"),
        port=port,
        retention=retention,
        log_level=log_level,
        sources=tuple(sources),
        feeds=feeds,
        archive=_take(output, "archive", "output.", bool, False),
        cluster=cluster_config(data.get("cluster")),
    )


def _state(raw: object, base: Path) -> tuple[Path, str | None]:
    """`state:` -> (the SQLite file, the PostgreSQL URL or None). A path is a SQLite file
    (relative to the config); a postgresql:// URL, alone or as `{url, password_env}`, is a
    PostgreSQL store whose password comes from that environment variable, never the file."""
    sqlite = (base / "state/aggregator.sqlite3").resolve()
    if raw is None:
        return sqlite, None
    key, env = "state", ""
    if isinstance(raw, dict):
        _unknown(raw, set(STATE_KEYS), "state.")
        key, url = "state.url", _take(raw, "url", "state.", str).strip()
        env = _take(raw, "password_env", "state.", str, "")
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"state.url: expected a postgresql:// URL, got {url!r}")
    elif isinstance(raw, str) and raw.strip():
        url = raw.strip()
        if not url.startswith(("postgresql://", "postgres://")):
            return (base / url).resolve(), None
    else:
        raise ConfigError("state: expected a SQLite file path, a postgresql:// URL, or a "
                          f"mapping with url and password_env, got {raw!r}")  # fmt: skip
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as e:
        raise ConfigError(f"{key}: not a valid URL ({e})") from None
    if parts.password is not None or "password" in parse_qs(parts.query):
        raise ConfigError(f"{key}: the URL holds a password; never write it in the config: "
                          "put it in an environment variable and name that in "
                          "state.password_env (state: {url: ..., password_env: NAME})")  # fmt: skip
    if not env:
        return sqlite, url
    if not _ENV_NAME.match(env):
        raise ConfigError(f"state.password_env: expected an environment variable name, "
                          f"got {env!r}")  # fmt: skip
    password = os.environ.get(env)
    if password is None:
        raise ConfigError(f"state.password_env: the environment variable {env} is not set "
                          "(it must hold the database password)")  # fmt: skip
    if not parts.username:
        raise ConfigError("state.url: name the database user (postgresql://USER@host/db) "
                          "when state.password_env gives a password")  # fmt: skip
    user, _, host = parts.netloc.rpartition("@")
    netloc = f"{user}:{quote(password, safe='')}@{host}"
    return sqlite, urlunsplit(parts._replace(netloc=netloc))


def _named(raw: object, prefix: str, allowed: Sequence[str], expected: str) -> dict[str, Any]:
    """A list item of sources: or feeds: as a mapping with known keys and a valid name."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix[:-1]}: expected a mapping with {expected}")
    _unknown(raw, set(allowed), prefix)
    name = _take(raw, "name", prefix, str)
    if not _NAME.match(name):
        raise ConfigError(f"{prefix}name: use letters, digits, '-', '_' or '.', got {name!r}")
    return raw


def _feed(raw: object, prefix: str, source_names: set[str]) -> FeedConfig:
    raw = _named(raw, prefix, FEED_KEYS, "name and a filter")
    name = raw["name"]

    def strings(key: str) -> tuple[str, ...]:
        value = _take(raw, key, prefix, (list, str), [])
        items = [value] if isinstance(value, str) else value
        if not all(isinstance(v, str) and v.strip() for v in items):
            raise ConfigError(f"{prefix}{key}: expected a list of non-empty strings")
        return tuple(v.strip() for v in items)

    sources = strings("sources")
    for source in sources:
        if source not in source_names:
            raise ConfigError(f"{prefix}sources: no source is named {source!r}")
    categories = tuple(dict.fromkeys(path_slug(c.lstrip("#")) for c in strings("categories")))
    match = strings("match")
    if not (sources or categories or match):
        raise ConfigError(f"{prefix[:-1]}: give at least one of sources, categories or match")
    return FeedConfig(
        name=name, title=_take(raw, "title", prefix, str, name),
        sources=sources, categories=categories, match=match,
    )  # fmt: skip


def _http_url(url: str, key: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as e:
        raise ConfigError(f"{key}: not a valid URL ({e}): {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{key}: expected an http(s) URL, got {url!r}")


def _site(value: str, key: str) -> str:
    """A seeds source's `site:`: a host (`www.example.com.tr`) or a URL naming it."""
    if not value:
        return ""
    host = site_host(value if "//" in value else f"https://{value}")
    if not host or "." not in host:
        raise ConfigError(f"{key}: expected a host name such as www.example.com.tr, got {value!r}")
    return host


def _css(selector: str, key: str) -> None:
    """Refuse a selector soupsieve cannot compile now, not at the first fetch."""
    import soupsieve  # BeautifulSoup's selector engine, the one html sources use

    try:
        soupsieve.compile(selector)
    except soupsieve.SelectorSyntaxError as e:
        reason = str(e).splitlines()[0] if str(e) else "syntax error"
        raise ConfigError(f"{key}: not a valid CSS selector {selector!r}: {reason}; fix "
                          "the selector") from None  # fmt: skip


def _source(raw: object, prefix: str, base: Path) -> SourceConfig:
    raw = _named(raw, prefix, SOURCE_KEYS, "name, type and path or url")
    name = raw["name"]
    kind = _take(raw, "type", prefix, str)
    if kind not in SOURCE_TYPES:
        raise ConfigError(f"{prefix}type: expected one of {', '.join(SOURCE_TYPES)}, got {kind!r}")
    every = parse_duration(raw.get("every", "5m"), f"{prefix}every")
    fulltext = _take(raw, "fulltext", prefix, bool, False)
    if fulltext and kind != "feed":
        raise ConfigError(f"{prefix}fulltext: only feed sources fetch their items' pages")
    if kind == "seeds":
        for key in ("url", "links", "selectors"):
            if key in raw:
                raise ConfigError(f"{prefix}{key}: not used by a seeds source (it reads path:)")
        return SourceConfig(
            name=name, type=kind, every=every,
            path=(base / _take(raw, "path", prefix, str)).resolve(),
            site=_site(_take(raw, "site", prefix, str, ""), f"{prefix}site"),
        )  # fmt: skip
    if "path" in raw:
        raise ConfigError(f"{prefix}path: a {kind} source reads url:, not path:")
    if "site" in raw:
        raise ConfigError(f"{prefix}site: only seeds sources take site: (a {kind} has URLs)")
    url = _take(raw, "url", prefix, str)
    _http_url(url, f"{prefix}url")
    limit = _take(raw, "limit", prefix, int, 20)
    if limit < 1:
        raise ConfigError(f"{prefix}limit: must be at least 1, got {limit}")
    selectors = _take(raw, "selectors", prefix, dict, {})
    for key, value in selectors.items():
        if key not in HTML_FIELDS:
            raise ConfigError(
                f"{prefix}selectors.{key}: unknown field (allowed: {', '.join(HTML_FIELDS)})"
            )
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{prefix}selectors.{key}: expected a CSS selector string")
        _css(value, f"{prefix}selectors.{key}")
    links = _take(raw, "links", prefix, str, None)
    if links is not None:
        _css(links, f"{prefix}links")
    if kind == "feed" and ("links" in raw or selectors):
        key = "links" if "links" in raw else "selectors"
        raise ConfigError(f"{prefix}{key}: only html sources take links: and selectors:")
    return SourceConfig(
        name=name, type=kind, every=every, url=url,
        links=links, limit=limit,
        selectors=tuple(sorted(selectors.items())), fulltext=fulltext,
    )  # fmt: skip


def cluster_config(raw: object) -> ClusterConfig:
    """`cluster:`: the node's name (unique among the nodes) and the lease of its claims."""
    if raw is None:
        return ClusterConfig()
    if not isinstance(raw, dict):
        raise ConfigError(f"cluster: expected a mapping of settings, got {raw!r}")
    _unknown(raw, set(CLUSTER_KEYS), "cluster.")
    node = _take(raw, "node", "cluster.", str, "")
    if node and not _NAME.match(node):
        raise ConfigError(f"cluster.node: use letters, digits, '-', '_' or '.' (at most 64), "
                          f"got {node!r}")  # fmt: skip
    lease = parse_duration(raw.get("lease", 30), "cluster.lease")
    low, high = LEASE_BOUNDS
    if not low <= lease <= high:
        raise ConfigError(
            f"cluster.lease: must be between {low:g}s and {high:g}s (a renewal may take"
            f" a quarter of it), got {raw.get('lease')!r}"
        )
    return ClusterConfig(node=node, lease=lease)


def fetch_config(raw: object, prefix: str, inherited: FetchConfig) -> FetchConfig:
    """`fetch:` (or a source's `fetch:`, whose keys replace the global ones)."""
    if raw is None:
        return inherited
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix[:-1]}: expected a mapping of settings, got {raw!r}")
    _unknown(raw, set(FETCH_KEYS), prefix)
    hosts = inherited.allow_hosts
    if "allow_hosts" in raw:
        value = _take(raw, "allow_hosts", prefix, list, [])
        hosts = tuple(_host_entry(v, f"{prefix}allow_hosts[{i}]") for i, v in enumerate(value))
    configured, links = inherited.block_private_configured, inherited.block_private_links
    if "block_private" in raw:
        block = raw["block_private"]
        if not isinstance(block, bool) and block != "links":
            raise ConfigError(
                f"{prefix}block_private: expected true, false or links, got {block!r}"
            )
        configured, links = block is True, block is not False
    return FetchConfig(
        allow_hosts=hosts, block_private_configured=configured, block_private_links=links
    )


def _host_entry(value: object, key: str) -> str:
    """`host` or `host:port`, lower case, nothing else (no scheme, path or user)."""
    if isinstance(value, str) and value.strip():
        entry = value.strip().lower()
        try:
            parts = urlsplit(f"//{entry}")
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            pass
        else:
            if parts.hostname and parts.netloc == entry and "@" not in entry:
                return entry
    raise ConfigError(f"{key}: expected a host name or host:port, got {value!r}")


def _source_fetch(source: SourceConfig, raw: dict[str, Any], prefix: str,
                  fetch: FetchConfig) -> SourceConfig:  # fmt: skip
    if "fetch" in raw and source.type == "seeds":
        raise ConfigError(f"{prefix}fetch: not used by a seeds source (it reads path:)")
    return replace(source, fetch=fetch_config(raw.get("fetch"), f"{prefix}fetch.", fetch))
