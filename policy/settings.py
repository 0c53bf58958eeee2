"""The node's settings: env ``RULEDRIVE_*`` and CLI flags, validated once at start-up.

CLI flags override the environment. Any invalid value stops start-up with a ConfigError naming
the field (``ruledrive serve`` exits 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bus.mqtt import check_username, parse_mqtt_url
from bus.schema import VEHICLE_ID_PATTERN
from bus.topics import DEFAULT_PREFIX, SHARE_GROUP_PATTERN, check_prefix
from core.defaults import DEFAULT_MODEL_PATH, DEFAULT_MQTT_URL, READING_THRESHOLD
from core.errors import ConfigError
from perception.rule_encoder import DEFAULT_ENCODER_DIR

__all__ = [
    "DEFAULT_MODEL_PATH",
    "FRAME_OVERHEAD_BYTES",
    "PROVIDER_CHOICES",
    "NodeSettings",
    "load_settings",
]

PROVIDER_CHOICES = ("auto", "tensorrt", "cuda", "cpu")

# What a waiting frame costs the node besides its JPEG (its header, parsed message and queue
# entry), counted against max_pending_bytes (policy.node).
FRAME_OVERHEAD_BYTES = 2048


class NodeSettings(BaseSettings):
    # allow_inf_nan: RULEDRIVE_HEARTBEAT_S=nan is "not a finite number", not "too large".
    model_config = SettingsConfigDict(
        env_prefix="RULEDRIVE_", extra="forbid", frozen=True, allow_inf_nan=False
    )

    mqtt_url: str = Field(DEFAULT_MQTT_URL, description="mqtt://host:port or mqtts://")
    mqtt_username: str | None = Field(None, description="broker user name")
    mqtt_password: SecretStr | None = Field(None, description="broker password (env only)")
    tls_ca: Path | None = Field(None, description="CA file for mqtts:// (default: system CAs)")
    node_id: str = Field(
        "node-1", pattern=VEHICLE_ID_PATTERN, description="status/errors topics; MQTT client id"
    )
    topic_prefix: str = Field(DEFAULT_PREFIX, description="prefix of every topic")
    share_group: str | None = Field(
        None,
        pattern=SHARE_GROUP_PATTERN,
        description="replicas: frames come through the MQTT 5 shared subscription "
        "$share/SHARE_GROUP/..., each to one node of the group; every node still gets every rule "
        "set; none = this node takes every frame",
    )
    model_path: Path = Field(
        DEFAULT_MODEL_PATH, description="ONNX model; hot-reloaded when the file changes"
    )

    @field_validator("model_path", mode="before")
    @classmethod
    def _a_path(cls, v: object) -> object:
        if isinstance(v, str) and not v.strip():  # Path("") is ".", the working directory
            raise ValueError("is empty; name the ONNX model file")
        return v

    providers: str = Field("auto", description="auto, tensorrt, cuda or cpu")
    max_batch_size: int = Field(8, ge=1, le=256, description="frames per session.run")
    ort_threads: int = Field(
        0, ge=0, le=256, description="onnxruntime intra-op threads; 0 = its default (one per core)"
    )
    inference_threads: int = Field(
        0,
        ge=0,
        le=64,
        description="a micro-batch is split into this many shares, each decoded, checked and "
        "run through the frame graph on its own thread (OpenCV and onnxruntime release the "
        "GIL); 0 = 2 on a CPU with 2 or more cores, each run with half the cores' onnxruntime "
        "threads unless ort_threads is set (1.2x the decisions per second of one run on 2 "
        "cores, docs/benchmarks.md, Node), 1 on a GPU; 1 = the whole batch in one run",
    )
    cuda_graphs: bool = Field(
        True,
        description="on the CUDA provider, replay the frame graph as CUDA graphs captured per "
        "batch size up to max_batch_size (padded to a power of two), each checked against a "
        "plain run at start-up: 0.69 -> 0.22 ms per batch of 1 on an H200 (docs/benchmarks.md, "
        "GPU); no effect on other providers",
    )
    ort_spinning: bool = Field(
        False,
        description="let onnxruntime's threads spin-wait between runs: a little lower p99, but a "
        "core busy at any load (on a vehicle computer idle CPU is power and heat)",
    )
    max_wait_us: int = Field(2000, ge=0, le=1_000_000, description="micro-batch window")
    decode_ahead: bool = Field(
        False,
        description="decode frames on a worker thread as they arrive, overlapping JPEG decoding "
        "with inference (measured on 2 cores: 1.02x-1.10x, no consistent gain, "
        "docs/benchmarks.md; for machines with cores to spare); off: each batch is decoded "
        "before the model runs",
    )
    decode_threads: int = Field(
        2,
        ge=1,
        le=64,
        description="with inference_threads 1: threads that decode a micro-batch's JPEGs side "
        "by side before its run (OpenCV releases the GIL; 1.07x-1.12x over 1 at 8 vehicles on "
        "2 cores, docs/benchmarks.md); 1: the serving loop decodes them one by one. With "
        "several inference threads each share is decoded on its own thread instead",
    )
    max_frame_age_ms: float = Field(200.0, gt=0, description="older frames are skipped")
    max_rules_wait_ms: float = Field(
        500.0,
        gt=0,
        le=60_000,
        description="how long a vehicle's frames wait for its new rule set to be read (encoded "
        "on the node's one encoder thread, other vehicles' rule sets first) before they are "
        "answered rules_pending (SLOW_DOWN, valid=false) until it is",
    )
    max_clock_skew_ms: float = Field(
        500.0,
        ge=0,
        le=3_600_000,
        description="frames and rule sets stamped further ahead of the node's clock are refused",
    )
    confidence_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="below it: the low_confidence fallback (default: the model's, chosen from "
        "validation data)",
    )
    reading_check_threshold: float = Field(
        READING_THRESHOLD,
        ge=0.0,
        le=1.0,
        description="rules read with a top class probability below it are checked: if their "
        "runner-up reading would change a frame's decision, the frame is answered "
        "rules_not_understood (0 = no check; docs/contract.md)",
    )
    neighbour_reading: bool = Field(
        True,
        description="a rule whose read kind none of its nearest training rules has, while most "
        "of them agree on another class, is read as that class (for a model that carries the "
        "index; false = the model's own reading only; docs/training.md)",
    )
    max_payload_bytes: int = Field(
        2 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024, description="larger messages are refused"
    )
    metrics_port: int = Field(0, ge=0, le=65535, description="0 = no metrics endpoint")
    metrics_host: str = Field(
        "127.0.0.1", min_length=1, description="address the metrics endpoint listens on"
    )
    heartbeat_s: float = Field(
        5.0,
        ge=0.1,
        le=3600,
        description="retained online status period (at least 0.1 s: every status subscriber, "
        "every vehicle on the secure broker, receives each one)",
    )
    reload_poll_s: float = Field(2.0, ge=0, description="model mtime poll; 0 = SIGHUP only")
    rules_cache_size: int = Field(1024, ge=1, description="encoded rule sets kept")
    encoder_dir: Path = Field(
        DEFAULT_ENCODER_DIR, description="the multilingual text encoder the model was trained on"
    )
    error_report_interval_s: float = Field(
        1.0,
        ge=0,
        le=3600,
        description="at most one error report per code and topic per interval, with a count",
    )
    max_vehicles: int = Field(10_000, ge=1, description="vehicles whose rule sets are held")
    vehicle_ttl_s: float = Field(
        600.0,
        gt=0,
        description="a vehicle silent this long sheds its rule encodings and keeps its rule "
        "set until a new vehicle needs its place (max_vehicles), the longest silent first; one "
        "without a rule set is forgotten; never with a share group (its frames may be going to "
        "another replica)",
    )
    state_dir: Path | None = Field(
        None,
        description="keeps the newest rule set accepted per vehicle across restarts, so an old "
        "retained one replayed is refused (with trusted_keys, the set itself too, taken back at "
        "start); none = in memory only",
    )
    trusted_keys: Path | None = Field(
        None,
        description="Ed25519 public key (PEM) or a directory of *.pem/*.pub: only rule sets "
        "signed by one are taken; none = any rule set is taken (not secure)",
    )
    max_pending_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="frames waiting in total (each counts its JPEG plus 2 KiB for its header "
        "and queue entry; at least max_payload_bytes + 2 KiB); a new vehicle's frame beyond "
        "it is refused",
    )

    @field_validator("state_dir", "trusted_keys", "share_group", mode="before")
    @classmethod
    def _empty_path(cls, v: object) -> object:
        # RULEDRIVE_STATE_DIR= means "not set", not "."; RULEDRIVE_SHARE_GROUP= (compose's
        # empty default) means no group
        return None if v == "" else v

    @field_validator("trusted_keys")
    @classmethod
    def _keys_exist(cls, v: Path | None) -> Path | None:
        if v is not None and not v.exists():
            raise ValueError(f"{v}: no such file or directory")
        return v

    @field_validator("mqtt_url")
    @classmethod
    def _url(cls, v: str) -> str:
        try:
            parse_mqtt_url(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return v

    @field_validator("mqtt_username")
    @classmethod
    def _username(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            return check_username(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return check_prefix(v)

    @field_validator("providers")
    @classmethod
    def _providers(cls, v: str) -> str:
        v = v.strip().lower()
        if v not in PROVIDER_CHOICES:
            raise ValueError(f"providers must be one of {', '.join(PROVIDER_CHOICES)}")
        return v

    @model_validator(mode="after")
    def _tls(self) -> NodeSettings:
        if self.tls_ca is not None and not self.mqtt_url.startswith("mqtts://"):
            raise ValueError("tls_ca is set but mqtt_url is not mqtts://")
        if self.tls_ca is not None and not self.tls_ca.is_file():
            raise ValueError(f"tls_ca {self.tls_ca} is not a file")
        if self.mqtt_password is not None and self.mqtt_username is None:
            raise ValueError("mqtt_password is set without mqtt_username")
        # A waiting frame counts its JPEG plus FRAME_OVERHEAD_BYTES: a budget smaller than the
        # largest frame the node takes would refuse such frames for ever (node_overloaded).
        if self.max_pending_bytes < self.max_payload_bytes + FRAME_OVERHEAD_BYTES:
            raise ValueError(
                f"max_pending_bytes {self.max_pending_bytes} is less than one frame of "
                f"max_payload_bytes {self.max_payload_bytes} plus {FRAME_OVERHEAD_BYTES} bytes of "
                "its header and queue entry"
            )
        return self


def load_settings(overrides: Mapping[str, Any] | None = None) -> NodeSettings:
    """Environment + explicit overrides (None values are ignored); ConfigError if invalid."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return NodeSettings(**given)
    except ValidationError as exc:
        # One line; each setting by its environment variable and its flag, whichever was used.
        parts = [
            (
                f"RULEDRIVE_{str(e['loc'][0]).upper()} / --{str(e['loc'][0]).replace('_', '-')}"
                if e["loc"]
                else "settings"
            )
            + f": {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)
        ]
        raise ConfigError("invalid settings: " + "; ".join(parts)) from exc
