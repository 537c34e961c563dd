"""A test-only source for the scale specs: CloudTrail files that SIGKILL their own process
after handing out ``kill_after`` batches (a shard dying mid-run, deterministically)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from agent.config import ResolvedGlob
from agent.contracts import CollectContext, SessionBatch, SourceEnv
from providers.aws.files import CloudTrailFilesConfig, CloudTrailFilesSource

INNER_NAME = "cloudtrail-files[0]"  # the name (and checkpoint/unit prefix) of the real run


class KillingTrailConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    paths: list[ResolvedGlob] = Field(min_length=1)
    incremental: bool = True
    kill_after: int = Field(ge=1)


class KillingTrail:
    """Delegates to ``cloudtrail-files`` under the same name, then dies."""

    Config: ClassVar[type[BaseModel]] = KillingTrailConfig

    def __init__(self, config: KillingTrailConfig) -> None:
        inner = CloudTrailFilesConfig(
            type="cloudtrail-files", paths=config.paths, incremental=config.incremental
        )
        self.inner = CloudTrailFilesSource(name=INNER_NAME, config=inner)
        self.name = INNER_NAME
        self.kill_after = config.kill_after

    @classmethod
    def from_config(cls, config: Any, *, env: SourceEnv) -> Self:
        return cls(config)

    def select_units(self, owns: Callable[[str], bool]) -> None:
        self.inner.select_units(owns)

    def sessions(self, ctx: CollectContext) -> Iterator[SessionBatch]:
        for n, batch in enumerate(self.inner.sessions(ctx)):
            if n == self.kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            yield batch
