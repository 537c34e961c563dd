"""``ServiceState``: everything the app builds once at startup (store, policy engine, geo
data, inventory, evaluator, review service, metrics) so requests only evaluate."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from agent import registry
from agent.assembly import Plugins, build_classifier, build_engine, build_plugins
from agent.config import AppConfig, load_config
from agent.contracts import AcceleratorClassifier, AuditWindow, CollectContext, PolicyEngine
from agent.enrich import GeoEnricher
from agent.errors import PluginError, UsageError
from agent.inventory_index import InventoryIndex
from agent.models import Accelerator
from agent.notify.dispatch import NotificationDispatcher
from agent.pipeline import Evaluator, collect_inventory
from agent.review.hooks import parse_notifier_targets
from agent.review.service import ReviewService
from agent.server.settings import ServerSettings
from agent.store import SqlStore, open_store

__all__ = ["ServiceState", "build_state"]

log = structlog.get_logger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ServiceState:
    """Shared, long-lived objects of one app instance."""

    settings: ServerSettings
    config: AppConfig
    store: SqlStore
    review: ReviewService
    engine: PolicyEngine
    enricher: GeoEnricher
    classifier: AcceleratorClassifier
    inventory: InventoryIndex
    evaluator: Evaluator
    clock: Callable[[], datetime]
    dispatcher: NotificationDispatcher | None = None
    started_at: datetime = field(default_factory=_utcnow)
    inventory_errors: list[str] = field(default_factory=list)
    _catalogs: dict[str, Any] = field(default_factory=dict)
    _stack: ExitStack = field(default_factory=ExitStack)

    def accelerators_for(self, provider: str, instance_type: str) -> tuple[Accelerator, ...]:
        """Accelerators of an instance type from the provider's offline catalog (cached)."""
        if provider not in self._catalogs:
            try:
                self._catalogs[provider] = registry.instance_catalogs.load(provider)()
            except PluginError:
                self._catalogs[provider] = None
        catalog = self._catalogs[provider]
        if catalog is None:
            return ()
        return tuple(catalog.accelerators(instance_type) or ())

    def webhook_parser(self, name: str) -> Callable[..., Any]:
        """A registered webhook body parser (``chipwarden.webhooks`` entry points)."""
        parser: Callable[..., Any] = webhooks.load(name)
        return parser

    def close(self) -> None:
        """Release the store and geo databases."""
        self._stack.close()


webhooks = registry.Registry("webhooks")


def _inventory(
    config: AppConfig, plugins: Plugins, *, live: bool, clock: Callable[[], datetime]
) -> tuple[InventoryIndex, list[str]]:
    chosen = plugins if live else Plugins(inventories=plugins.inventories, sources=[])
    ctx = CollectContext(window=AuditWindow(since=None, until=None), clock=clock)
    index = collect_inventory(chosen, ctx)
    errors = [f"{e.source} {e.scope}: {e.message}" for e in ctx.scope_errors]
    return index, errors


def build_state(
    settings: ServerSettings,
    *,
    clock: Callable[[], datetime] | None = None,
    config: AppConfig | None = None,
) -> ServiceState:
    """Load config, open the store (migrating it), policies, geo data and inventory."""
    clock = clock or _utcnow
    doc = None
    if config is None:
        if settings.config is not None and not settings.config.exists():
            raise UsageError(f"{settings.config}: config file not found")
        config, doc = load_config(settings.config, overrides={"store": settings.store})
    elif settings.store:
        config = config.model_copy(update={"store": settings.store})
    stack = ExitStack()
    try:
        store = stack.enter_context(open_store(config.store, clock=clock))
        enricher = stack.enter_context(
            GeoEnricher.from_config(config.geo, base_dir=config.base_dir)
        )
        engine = build_engine(config, clock=clock)
        classifier = build_classifier(config)
        plugins = build_plugins(config, doc=doc, clock=clock)
        inventory, inventory_errors = _inventory(
            config, plugins, live=settings.live_inventory, clock=clock
        )
        review = ReviewService(
            store,
            clock=clock,
            pepper=settings.pepper(),
            exception_max_days=settings.exception_max_days,
            token_cache_seconds=settings.token_cache_seconds,
        )
        evaluator = Evaluator(
            engine=engine,
            enricher=enricher,
            classifier=classifier,
            inventory=inventory,
            clock=clock,
            finding_hook=review.exceptions.apply,
        )
        targets = parse_notifier_targets(config, doc)
        dispatcher = (
            NotificationDispatcher(store=store, targets=targets, clock=clock) if targets else None
        )
    except BaseException:
        stack.close()
        raise
    state = ServiceState(
        settings=settings,
        config=config,
        store=store,
        review=review,
        engine=engine,
        enricher=enricher,
        classifier=classifier,
        inventory=inventory,
        evaluator=evaluator,
        clock=clock,
        dispatcher=dispatcher,
        inventory_errors=inventory_errors,
        _stack=stack,
    )
    log.info(
        "service_ready",
        store=store.url,
        policies=len(engine.describe()),
        revision=engine.revision,
        instances=len(inventory),
        geo=list(enricher.describe()),
    )
    return state
