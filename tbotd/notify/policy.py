"""What is sent, to whom and when: de-duplication, cool-downs, filters, rate limits (pure).

Notification fatigue is the failure mode users report: a message per cycle, ten identical
alerts, a flapping ML service announced forty times an hour. The rules:

* A notice about a state (``topic``/``state``: the ML source, the database, a model's health)
  is sent when the state differs from the last one sent. Within ``cooldown`` of that send, a
  change is held; when the cool-down ends, the latest state is sent once (saying how often it
  changed meanwhile) — or nothing, if it flapped back. The first sighting of a normal state
  after a start says nothing.
* Any other notice is sent once per ``dedupe_window`` (same kind, symbol and text, or ``key``).
* Each target hears only what its filter passes, at most ``max_per_hour``: beyond that only
  critical notices go out, and the next one sent says how many were dropped.

Everything is a function of (state, notice, now, config) → (new state, deliveries).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from tbotd.domain.notices import Notice, NoticeKind, Severity

_HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class TargetRule:
    """One target's filter: minimum severity, kinds (empty: all) and kinds left out."""

    name: str
    min_severity: Severity = Severity.INFO
    kinds: frozenset[NoticeKind] = frozenset()
    exclude: frozenset[NoticeKind] = frozenset()

    def accepts(self, notice: Notice) -> bool:
        """This target wants ``notice``."""
        if notice.severity.rank < self.min_severity.rank or notice.kind in self.exclude:
            return False
        return not self.kinds or notice.kind in self.kinds


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The policy's knobs (from ``[notify]``)."""

    targets: tuple[TargetRule, ...]
    cooldown: timedelta = timedelta(minutes=10)
    dedupe_window: timedelta = timedelta(hours=1)
    max_per_hour: int = 30


@dataclass(frozen=True, slots=True)
class Topic:
    """A state topic: the state last sent (and when), a change held back, how many changes."""

    sent: str
    sent_at: datetime | None
    held: Notice | None = None
    changes: int = 0


@dataclass(frozen=True, slots=True)
class PolicyState:
    """Everything the policy remembers; bounded (old keys and send times are forgotten)."""

    topics: Mapping[str, Topic] = field(default_factory=dict)
    seen: Mapping[str, datetime] = field(default_factory=dict)
    sent: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)
    suppressed: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Delivery:
    """``notice`` goes to ``target``; ``suppressed``: what the rate limit dropped before it."""

    target: str
    notice: Notice
    suppressed: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """The new state, what to send, and what was dropped and why (for the metrics)."""

    state: PolicyState
    deliveries: tuple[Delivery, ...] = ()
    dropped: tuple[tuple[str, Notice], ...] = ()  # (reason, notice)


def admit(state: PolicyState, notice: Notice, now: datetime, cfg: PolicyConfig) -> Verdict:
    """Decide about a new notice."""
    if notice.topic:
        return _admit_state(state, notice, now, cfg)
    key = notice.identity
    last = state.seen.get(key)
    if last is not None and now - last < cfg.dedupe_window:
        return Verdict(state, dropped=(("duplicate", notice),))
    seen = {k: t for k, t in state.seen.items() if now - t < cfg.dedupe_window}
    seen[key] = now
    return _route(replace(state, seen=seen), notice, now, cfg)


def _admit_state(state: PolicyState, notice: Notice, now: datetime, cfg: PolicyConfig) -> Verdict:
    topic = state.topics.get(notice.topic)
    if topic is None:
        if notice.normal:  # nothing has happened yet: remember, say nothing
            return Verdict(_with_topic(state, notice.topic, Topic(notice.state, None)))
        return _send_state(state, notice, now, cfg, changes=0)
    cooling = topic.sent_at is not None and now - topic.sent_at < cfg.cooldown
    if not cooling:
        if notice.state == topic.sent:
            return Verdict(_with_topic(state, notice.topic, replace(topic, held=None, changes=0)))
        return _send_state(state, notice, now, cfg, changes=topic.changes)
    if topic.held is None and notice.state == topic.sent:
        return Verdict(state, dropped=(("unchanged", notice),))
    held = None if notice.state == topic.sent else notice
    changed = replace(topic, held=held, changes=topic.changes + 1)
    return Verdict(_with_topic(state, notice.topic, changed), dropped=(("cooling_down", notice),))


def flush(state: PolicyState, now: datetime, cfg: PolicyConfig) -> Verdict:
    """Send the held state of every topic whose cool-down has ended."""
    deliveries: list[Delivery] = []
    dropped: list[tuple[str, Notice]] = []
    for name, topic in sorted(state.topics.items()):
        if topic.sent_at is None or now - topic.sent_at < cfg.cooldown:
            continue
        if topic.held is None:
            if topic.changes:  # it flapped back to what was sent: nothing new to say
                state = _with_topic(state, name, replace(topic, changes=0))
            continue
        verdict = _send_state(state, topic.held, now, cfg, changes=topic.changes)
        state = verdict.state
        deliveries += verdict.deliveries
        dropped += verdict.dropped
    return Verdict(state, tuple(deliveries), tuple(dropped))


def next_flush(state: PolicyState, cfg: PolicyConfig) -> datetime | None:
    """When :func:`flush` next has something to do (None: nothing is held)."""
    due = [
        t.sent_at + cfg.cooldown
        for t in state.topics.values()
        if t.sent_at is not None and (t.held is not None or t.changes)
    ]
    return min(due, default=None)


def _send_state(
    state: PolicyState, notice: Notice, now: datetime, cfg: PolicyConfig, changes: int
) -> Verdict:
    if changes > 1:
        minutes = cfg.cooldown.total_seconds() / 60
        notice = replace(
            notice, text=f"{notice.text} (changed {changes} times in {minutes:g} min)"
        ).with_fields(("changes", str(changes)))
    state = _with_topic(state, notice.topic, Topic(notice.state, now))
    return _route(state, notice, now, cfg)


def _with_topic(state: PolicyState, name: str, topic: Topic) -> PolicyState:
    return replace(state, topics={**state.topics, name: topic})


def _route(state: PolicyState, notice: Notice, now: datetime, cfg: PolicyConfig) -> Verdict:
    """Filters and the hourly budget of each target."""
    deliveries: list[Delivery] = []
    dropped: list[tuple[str, Notice]] = []
    sent = dict(state.sent)
    suppressed = dict(state.suppressed)
    for rule in cfg.targets:
        if not rule.accepts(notice):
            continue
        recent = tuple(t for t in sent.get(rule.name, ()) if now - t < _HOUR)
        if len(recent) >= cfg.max_per_hour and notice.severity is not Severity.CRITICAL:
            suppressed[rule.name] = suppressed.get(rule.name, 0) + 1
            sent[rule.name] = recent
            dropped.append(("rate_limited", notice))
            continue
        deliveries.append(Delivery(rule.name, notice, suppressed.pop(rule.name, 0)))
        sent[rule.name] = (*recent, now)
    return Verdict(
        replace(state, sent=sent, suppressed=suppressed), tuple(deliveries), tuple(dropped)
    )
