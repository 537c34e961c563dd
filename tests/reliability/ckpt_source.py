"""Test-only source: CloudTrail files that checkpoint per file, like a live source does.

The shipped file sources keep no checkpoint (every run re-reads every file, idempotently), so
on their own a crash test could not show that a checkpoint never runs ahead of its findings.
This source commits ``checkpoint = <last file name>`` with each file's batch and skips files
at or before it on the next run: a checkpoint that ran ahead would lose that file's findings.
Loaded by the harness config as ``type: tests.reliability.ckpt_source:CheckpointedCloudTrailFiles``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from agent.config import ResolvedGlob
from agent.contracts import CollectContext, SessionBatch, SourceEnv
from providers.aws.files import CloudTrailFilesConfig, CloudTrailFilesSource


class CheckpointedFilesConfig(BaseModel):
    """``paths`` as for cloudtrail-files plus the checkpoint ``scope``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    paths: list[ResolvedGlob] = Field(min_length=1)
    scope: str = Field(min_length=1)


class CheckpointedCloudTrailFiles:
    """One batch per file, in name order, each carrying the file name as checkpoint."""

    Config: ClassVar[type[BaseModel]] = CheckpointedFilesConfig

    def __init__(self, *, name: str, config: CheckpointedFilesConfig) -> None:
        self.name = name
        self.config = config

    @classmethod
    def from_config(cls, config: Any, *, env: SourceEnv) -> Self:
        return cls(name=env.name, config=config)

    def _one(self, path: str) -> CloudTrailFilesSource:
        cfg = CloudTrailFilesConfig(type="cloudtrail-files", paths=[path])
        return CloudTrailFilesSource(name=self.name, config=cfg)

    def sessions(self, ctx: CollectContext) -> Iterator[SessionBatch]:
        done = ctx.checkpoint(self.config.scope)
        listing = CloudTrailFilesSource(
            name=self.name,
            config=CloudTrailFilesConfig(type="cloudtrail-files", paths=self.config.paths),
        )
        for path in listing.files(ctx):
            if done is not None and path.name <= done:
                continue
            for batch in self._one(str(path)).sessions(ctx):
                yield dataclasses.replace(
                    batch, checkpoint_scope=self.config.scope, checkpoint=path.name
                )
