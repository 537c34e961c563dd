"""``AzureSource``: GPU inventory (VMs, scale-set VMs) and remote-access sessions (Bastion,
VM sign-ins, run command / serial console, NSG and VNet flow logs) for Azure subscriptions."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, Self

import structlog
from pydantic import BaseModel, ValidationError

from agent.contracts import CollectContext, SessionBatch, SourceEnv
from agent.errors import ConfigError
from agent.models import GpuInstance
from providers.azure.catalog import AzureSizeCatalog
from providers.azure.client import AzureClient
from providers.azure.config import AzureConfig
from providers.azure.feeds import Feeds
from providers.azure.inventory import InventoryCollector, InventoryIndex

__all__ = ["AzureSource"]

log = structlog.get_logger(__name__)


def _validate(config: Any, *, env: SourceEnv) -> AzureConfig:
    if isinstance(config, AzureConfig):
        return config
    if isinstance(config, BaseModel):
        config = config.model_dump()
    try:
        return AzureConfig.model_validate(config, context={"base_dir": env.base_dir})
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: "
            + ("unknown key" if err["type"] == "extra_forbidden" else err["msg"])
            for err in exc.errors()
        ]
        raise ConfigError(
            "; ".join(problems),
            location=f"sources[{env.name}]",
            hint="see docs/azure.md for the accepted keys",
        ) from exc


class AzureSource:
    """Inventory and sessions for the subscriptions / workspace / containers of one config."""

    Config: ClassVar[type[BaseModel]] = AzureConfig

    def __init__(
        self,
        config: AzureConfig,
        *,
        env: SourceEnv,
        client: AzureClient | None = None,
        catalog: AzureSizeCatalog | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.env = env
        self.name = config.name or env.name
        self.client = client or AzureClient.from_config(
            config, environ=os.environ if environ is None else environ
        )
        self.catalog = catalog or AzureSizeCatalog()
        self._collector = InventoryCollector(
            client=self.client, catalog=self.catalog, source=self.name
        )
        self._subscriptions: list[str] | None = None
        self._index: InventoryIndex | None = None

    @classmethod
    def from_config(cls, config: Any, *, env: SourceEnv) -> Self:
        """Validate ``config`` (a mapping or an AzureConfig) and build the SDK facade."""
        validated = _validate(config, env=env)
        environ = env.options.get("environ")
        return cls(validated, env=env, environ=environ if isinstance(environ, Mapping) else None)

    def _subs(self, ctx: CollectContext) -> list[str]:
        if self._subscriptions is None:
            self._subscriptions = self._collector.subscriptions(ctx, self.config.subscriptions)
        return self._subscriptions

    def _inventory(self, ctx: CollectContext) -> InventoryIndex:
        if self._index is None:
            self._index = self._collector.collect(ctx, self._subs(ctx))
        return self._index

    def inventory(self, ctx: CollectContext) -> Iterable[GpuInstance]:
        """Every VM and scale-set VM (accelerators empty for non-GPU sizes); ids lower-case."""
        return list(self._inventory(ctx).instances)

    def sessions(self, ctx: CollectContext) -> Iterator[SessionBatch]:
        """One batch per subscription (Activity Log), per workspace query and per container."""
        feeds = Feeds(
            client=self.client, config=self.config, source=self.name, clock=self.env.clock
        )
        config = self.config
        if config.wants("activity"):
            yield from feeds.activity(ctx, self._subs(ctx))
        if config.workspace_id and config.wants("bastion"):
            yield from feeds.bastion_workspace(ctx)
        if config.workspace_id and config.wants("sign-in"):
            yield from feeds.signins(ctx)
        if config.bastion_blobs and config.wants("bastion"):
            yield from feeds.bastion_blobs(ctx)
        if config.flow_logs and config.wants("flow"):
            index = self._inventory(ctx)
            for where in config.flow_logs:
                yield from feeds.flow_logs(ctx, index, where)

    def close(self) -> None:
        """Release the SDK clients' connections."""
        self.client.close()
