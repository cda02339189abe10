"""Versioned wire and API models: the only place their shapes are defined."""

from shared.schemas.change_message import ChangeMessage, LeaderboardEntry, UserChange, WindowChange
from shared.schemas.competition import (
    Competition,
    CompetitionCreate,
    CompetitionUpdate,
    Operator,
    ResetSchedule,
    SortOrder,
    Visibility,
)
from shared.schemas.identifiers import IDENTIFIER_PATTERN, Identifier
from shared.schemas.score_event import (
    ControlAction,
    ControlEvent,
    ScoreEvent,
    ScoreEventIn,
    TopicMessage,
    parse_topic_message,
)
from shared.schemas.standing import Standing

__all__ = [
    "IDENTIFIER_PATTERN",
    "ChangeMessage",
    "Competition",
    "CompetitionCreate",
    "CompetitionUpdate",
    "ControlAction",
    "ControlEvent",
    "Identifier",
    "LeaderboardEntry",
    "Operator",
    "ResetSchedule",
    "ScoreEvent",
    "ScoreEventIn",
    "SortOrder",
    "Standing",
    "TopicMessage",
    "UserChange",
    "Visibility",
    "WindowChange",
    "parse_topic_message",
]
