"""Principal-history signals: impossible travel, new country / network, and activity in a
restricted jurisdiction's working hours. Stored (bounded) in the finding store."""

from agent.history.context import HistoryContext
from agent.history.geo import Centroids, WorkingHours, great_circle_km, load_centroids
from agent.history.signals import HistorySettings, Visit, evaluate_visit
from agent.history.store import HistoryStore

__all__ = [
    "Centroids",
    "HistoryContext",
    "HistorySettings",
    "HistoryStore",
    "Visit",
    "WorkingHours",
    "evaluate_visit",
    "great_circle_km",
    "load_centroids",
]
