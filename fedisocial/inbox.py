"""Receiving activities (being written: accept, verify, dedupe, persist, process)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fedisocial.ap.client import FederationClient
from fedisocial.config import Settings
from fedisocial.jobs import JobQueue
from fedisocial.outbox import Outbox
from fedisocial.store.db import Database
from fedisocial.urls import Urls

__all__ = ["PROCESS", "Inbox"]

PROCESS = "process_activity"


@dataclass
class Inbox:
    db: Database
    client: FederationClient
    queue: JobQueue
    outbox: Outbox
    urls: Urls
    settings: Settings

    async def process(self, payload: dict[str, Any]) -> None:
        raise NotImplementedError
