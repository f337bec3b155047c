"""One typed, validated configuration loaded from `config.toml` in the home folder.

Unknown keys and bad values are refused with a message naming the key, so a
typo in a hand-edited file never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from gearview.errors import ConfigError
from gearview.home import Home

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NODE_ROLES = ("query", "retrieve", "send", "get", "commit", "worklist")
MAX_PORT = 65535


def validate_ae_title(key: str, value: str) -> str:
    """AE titles: 1–16 characters of the default repertoire, no backslash or control."""
    stripped = value.strip()
    if not stripped:
        raise ConfigError(key, "an AE title must not be empty")
    if len(value) > 16:
        raise ConfigError(key, f"an AE title has at most 16 characters, got {len(value)}")
    if any(ch == "\\" or ord(ch) < 32 or ord(ch) > 126 for ch in value):
        raise ConfigError(
            key, "an AE title may not contain a backslash or control/non-ASCII characters"
        )
    return stripped


def validate_port(key: str, value: int, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if not low <= value <= MAX_PORT:
        raise ConfigError(key, f"a port is between {low} and {MAX_PORT}, got {value}")
    return value


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(key, f"must be greater than 0, got {value}")


@dataclass
class TlsConfig:
    enabled: bool = False
    cert: str = ""
    key: str = ""
    ca: str = ""
    require_client_cert: bool = False

    def validate(self, prefix: str) -> None:
        if not self.enabled:
            return
        for name in ("cert", "key"):
            if not getattr(self, name):
                raise ConfigError(f"{prefix}.{name}", "required when TLS is enabled")
        if self.require_client_cert and not self.ca:
            raise ConfigError(f"{prefix}.ca", "a CA is required to check client certificates")
        for name in ("cert", "key", "ca"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ConfigError(f"{prefix}.{name}", f"file not found: {path}")


@dataclass
class ServerConfig:
    ae_title: str = "GEARVIEW"
    port: int = 11112
    bind_address: str = ""
    max_associations: int = 20
    max_pdu: int = 524288
    acse_timeout: float = 30.0
    dimse_timeout: float = 30.0
    network_timeout: float = 60.0
    require_called_ae: bool = True
    allowed_calling_aets: list[str] = field(default_factory=list)
    accepted_sop_classes: list[str] = field(default_factory=list)
    accepted_transfer_syntaxes: list[str] = field(default_factory=list)
    tls: TlsConfig = field(default_factory=TlsConfig)

    def validate(self, prefix: str = "server") -> None:
        from gearview import conformance

        self.ae_title = validate_ae_title(f"{prefix}.ae_title", self.ae_title)
        validate_port(f"{prefix}.port", self.port, allow_zero=True)
        if not 1 <= self.max_associations <= 1000:
            raise ConfigError(f"{prefix}.max_associations", "must be between 1 and 1000")
        if self.max_pdu != 0 and not 4096 <= self.max_pdu <= 2**31:
            raise ConfigError(
                f"{prefix}.max_pdu", "must be 0 (unlimited) or between 4096 and 2^31 bytes"
            )
        for name in ("acse_timeout", "dimse_timeout", "network_timeout"):
            _positive(f"{prefix}.{name}", getattr(self, name))
        self.allowed_calling_aets = [
            validate_ae_title(f"{prefix}.allowed_calling_aets", a)
            for a in self.allowed_calling_aets
        ]
        known_sops = set(conformance.storage_sop_classes())
        for uid in self.accepted_sop_classes:
            if uid not in known_sops:
                raise ConfigError(
                    f"{prefix}.accepted_sop_classes", f"not a storage SOP class: {uid}"
                )
        known_ts = set(conformance.TRANSFER_SYNTAXES)
        for uid in self.accepted_transfer_syntaxes:
            if uid not in known_ts:
                raise ConfigError(
                    f"{prefix}.accepted_transfer_syntaxes", f"unsupported transfer syntax: {uid}"
                )
        self.tls.validate(f"{prefix}.tls")


@dataclass
class ClientConfig:
    acse_timeout: float = 30.0
    dimse_timeout: float = 60.0
    network_timeout: float = 60.0
    max_pdu: int = 524288
    default_send_destination: str = ""
    allow_lossy_conversion: bool = False
    #: How often a queued send that failed on a network error is retried by itself
    #: (0: never); a send the node answered (instances refused, no commitment) is not.
    send_retries: int = 3
    #: Seconds before the first automatic retry of a send; each next one waits twice
    #: as long (at most an hour).
    send_retry_delay: float = 30.0

    def validate(self, prefix: str = "client") -> None:
        for name in ("acse_timeout", "dimse_timeout", "network_timeout", "send_retry_delay"):
            _positive(f"{prefix}.{name}", getattr(self, name))
        if not 0 <= self.send_retries <= 100:
            raise ConfigError(f"{prefix}.send_retries", "must be between 0 and 100")
        if self.max_pdu != 0 and not 4096 <= self.max_pdu <= 2**31:
            raise ConfigError(
                f"{prefix}.max_pdu", "must be 0 (unlimited) or between 4096 and 2^31 bytes"
            )


#: Size units of `storage.max_size` / `storage.min_free` (decimal and binary).
SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
              "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
RETENTION_MODES = ("recycle", "reject")


def parse_size(key: str, text: str, allow_percent: bool = False) -> tuple[int, float]:
    """'500 GB', '1.5TiB', '0' or '' -> (bytes, 0.0); '10%' -> (0, 10.0) where allowed."""
    value = text.strip().replace(" ", "")
    if not value:
        return 0, 0.0
    if allow_percent and value.endswith("%"):
        try:
            percent = float(value[:-1])
        except ValueError:
            percent = -1.0
        if not 0 <= percent < 100:
            raise ConfigError(key, f"a percentage is between 0 and 100, got {text!r}")
        return 0, percent
    number = value.rstrip("BbKkMmGgTtIi")
    unit = value[len(number):].upper()
    try:
        amount = float(number)
    except ValueError:
        amount = -1.0
    if unit not in SIZE_UNITS or amount < 0:
        example = "'500 GB', '2 TiB' or '10%'" if allow_percent else "'500 GB' or '2 TiB'"
        raise ConfigError(key, f"not a size like {example}: {text!r}")
    return int(amount * SIZE_UNITS[unit]), 0.0


@dataclass
class StorageConfig:
    folder: str = ""
    #: Set ext2/3/4's `+T` flag on the spool folder (Linux): edits right after a
    #: large delete create their files faster. Off: gearview changes no flags.
    set_spool_topdir_flag: bool = False
    #: Largest the cache may grow, e.g. "500 GB" (empty: no limit).
    max_size: str = ""
    #: Free space to keep on the storage disk, e.g. "20 GB" or "10%" (empty: none).
    min_free: str = ""
    #: Days a study stays after it was sent (and committed, to a node with the
    #: `commit` role) before the retention policy may purge it.
    keep_sent_days: float = 7.0
    #: Over a limit: "recycle" purges sent studies (oldest first) by itself;
    #: "reject" purges only on `gearview store purge` and refuses new stores
    #: (A700). Either way a study not yet sent is never purged, and stores are
    #: refused once only such studies are left.
    when_full: str = "recycle"

    def validate(self, prefix: str = "storage") -> None:
        if self.folder and "\x00" in self.folder:
            raise ConfigError(f"{prefix}.folder", "not a valid path")
        parse_size(f"{prefix}.max_size", self.max_size)
        parse_size(f"{prefix}.min_free", self.min_free, allow_percent=True)
        if self.keep_sent_days < 0:
            raise ConfigError(f"{prefix}.keep_sent_days", "must be 0 or more")
        if self.when_full not in RETENTION_MODES:
            raise ConfigError(f"{prefix}.when_full", f"must be one of "
                              f"{', '.join(RETENTION_MODES)}, got {self.when_full!r}")

    def size_limit(self) -> int:
        """`max_size` in bytes (0: none)."""
        return parse_size("storage.max_size", self.max_size)[0]

    def free_floor(self, disk_bytes: int) -> int:
        """`min_free` in bytes on a disk of `disk_bytes` (0: none)."""
        floor, percent = parse_size("storage.min_free", self.min_free, allow_percent=True)
        return floor or int(disk_bytes * percent / 100)


@dataclass
class ViewerConfig:
    frame_cache_bytes: int = 1 << 30

    def validate(self, prefix: str = "viewer") -> None:
        if self.frame_cache_bytes < 16 << 20:
            raise ConfigError(f"{prefix}.frame_cache_bytes", "must be at least 16 MiB")


@dataclass
class MediaConfig:
    """Patient media: the portable viewer copied onto burned discs, the default medium."""

    portable_viewer: str = ""
    default_medium: str = "CD"
    burn_device: str = ""
    #: Keep Original Attributes Sequence items that hold another patient identity on patient
    #: discs (a corrected study's disc would carry the wrong patient's name and ID).
    keep_original_attributes: bool = False


@dataclass
class QcConfig:
    """The QC promise (SPEC §2.10)."""

    #: An instance of an edited study that arrives again gets the same correction; when
    #: false it is stored as it came and the study is flagged (never silently reverted).
    reapply_corrections: bool = True


@dataclass
class Node:
    """A remote DICOM application entity we query, retrieve from or send to."""

    name: str
    ae_title: str
    host: str
    port: int
    roles: list[str] = field(default_factory=lambda: ["query", "retrieve", "send"])
    tls: bool = False
    timeout: float = 0.0

    def validate(self, prefix: str = "nodes") -> None:
        key = f"{prefix}[{self.name or '?'}]"
        if not self.name or any(c.isspace() or c in "@:/\\" for c in self.name):
            raise ConfigError(f"{key}.name", "a node name is one word without '@', ':' or slashes")
        self.ae_title = validate_ae_title(f"{key}.ae_title", self.ae_title)
        if not self.host or any(c.isspace() for c in self.host):
            raise ConfigError(f"{key}.host", "a host name or address is required")
        validate_port(f"{key}.port", self.port)
        for role in self.roles:
            if role not in NODE_ROLES:
                raise ConfigError(
                    f"{key}.roles", f"unknown role {role!r} (known: {', '.join(NODE_ROLES)})"
                )
        if self.timeout < 0:
            raise ConfigError(f"{key}.timeout", "must be 0 (use the client defaults) or more")

    @property
    def address(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    client: ClientConfig = field(default_factory=ClientConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    viewer: ViewerConfig = field(default_factory=ViewerConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    qc: QcConfig = field(default_factory=QcConfig)
    nodes: list[Node] = field(default_factory=list)

    def validate(self) -> Config:
        self.server.validate()
        self.client.validate()
        self.storage.validate()
        self.viewer.validate()
        seen: set[str] = set()
        for node in self.nodes:
            node.validate()
            if node.name.lower() in seen:
                raise ConfigError(f"nodes[{node.name}].name", "two nodes have this name")
            seen.add(node.name.lower())
        if (
            self.client.default_send_destination
            and self.client.default_send_destination.lower() not in seen
        ):
            raise ConfigError("client.default_send_destination", "no node has this name")
        return self

    def server_differs(self, other: Config) -> bool:
        """True when `other` changes what a listening server was started with ([server]).

        Everything else (nodes, client, media) the server reads as it needs it.
        """
        return self.server != other.server

    def storage_dir(self, home: Home) -> Path:
        return (
            Path(self.storage.folder).expanduser()
            if self.storage.folder
            else home.default_files_dir
        )

    def node(self, name: str) -> Node | None:
        for node in self.nodes:
            if node.name.lower() == name.lower():
                return node
        return None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Check one TOML value against the dataclass annotation, naming the key on error."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(key, "must be a table")
        return _from_dict(annotation, value, key)
    if origin in (list, typing.List):  # noqa: UP006
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise ConfigError(key, "must be a list")
        return [_coerce(f"{key}[{i}]", item, item_type) for i, item in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(key, "unsupported union type")  # pragma: no cover
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"must be a whole number, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, got {value!r}")
        return value
    raise ConfigError(key, f"unsupported type {annotation!r}")  # pragma: no cover


def _from_dict(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in names:
            raise ConfigError(full, "unknown setting")
        kwargs[key] = _coerce(full, value, hints[key])
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{prefix}.{missing[0]}" if prefix else missing[0], "is required")
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build and validate a Config; raises ConfigError naming the bad key."""
    return _from_dict(Config, data, "").validate()


def load_config(home: Home) -> Config:
    """Read `config.toml` (defaults when absent)."""
    path = home.config_file
    if not path.exists():
        return Config().validate()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    return config_from_dict(data)


def save_config(home: Home, config: Config) -> None:
    """Validate, then write atomically so a crash never leaves half a config."""
    config.validate()
    home.ensure()
    data = config.to_dict()
    text = tomli_w.dumps(data)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=home.root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, home.config_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
