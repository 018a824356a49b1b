"""Which OpenFeature provider the controller evaluates its flags with, and how to build it.

``kind``:

* ``flagd-rpc``: a flagd server evaluates (``host``/``port``, default 8013);
* ``flagd-in-process``: flag definitions are synced from flagd's sync API and evaluated
  in the controller (``host``/``port``, default 8015);
* ``flagd-file``: definitions are read from a local flagd JSON/YAML file (``path``),
  re-read every ``pollIntervalMs`` (a mounted ConfigMap works);
* ``entry-point``: any OpenFeature provider a package registers under the entry-point
  group ``changelane.flag_providers`` (``entryPoint`` names it); the callable is invoked
  with ``options`` as keyword arguments and must return the provider.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Annotated, Any, Literal, Self

from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.provider import FeatureProvider
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

ENTRY_POINT_GROUP = "changelane.flag_providers"


class FlagProviderConfig(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    kind: Literal["flagd-rpc", "flagd-in-process", "flagd-file", "entry-point"] = "flagd-rpc"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    tls: bool = False
    path: str | None = None
    poll_interval_ms: Annotated[int, Field(ge=50)] = 1000
    deadline_ms: Annotated[int, Field(ge=10)] = 500
    entry_point: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _needs(self) -> Self:
        if self.kind == "flagd-file" and not self.path:
            raise ValueError("kind flagd-file needs path (the flagd definitions file)")
        if self.kind == "entry-point" and not self.entry_point:
            raise ValueError(f"kind entry-point needs entryPoint (a name in {ENTRY_POINT_GROUP})")
        return self


class ProviderConfigError(ValueError):
    pass


def build_provider(config: FlagProviderConfig) -> FeatureProvider:
    if config.kind == "flagd-file":
        # The flagd file watcher sleeps deadline_ms between checks of the file's mtime:
        # that is the poll interval that matters in FILE mode.
        return FlagdProvider(
            resolver_type=ResolverType.FILE,
            offline_flag_source_path=config.path,
            deadline_ms=config.poll_interval_ms,
        )
    if config.kind in ("flagd-rpc", "flagd-in-process"):
        rpc = config.kind == "flagd-rpc"
        return FlagdProvider(
            resolver_type=ResolverType.RPC if rpc else ResolverType.IN_PROCESS,
            host=config.host,
            port=config.port or (8013 if rpc else 8015),
            tls=config.tls,
            deadline_ms=config.deadline_ms,
        )
    matches = entry_points(group=ENTRY_POINT_GROUP, name=config.entry_point or "")
    if not matches:
        raise ProviderConfigError(
            f"no OpenFeature provider named {config.entry_point!r} in entry-point group "
            f"{ENTRY_POINT_GROUP} (is its package installed?)"
        )
    factory = next(iter(matches)).load()
    provider = factory(**config.options)
    if not callable(getattr(provider, "resolve_boolean_details", None)):
        raise ProviderConfigError(
            f"entry point {config.entry_point!r} returned {type(provider).__name__}, "
            "not an OpenFeature provider"
        )
    return provider  # type: ignore[no-any-return]
