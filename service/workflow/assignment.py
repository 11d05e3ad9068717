"""Who works a conversation: assigning (claiming is assigning to yourself) and presence, the agents who have
it open now, so two agents do not answer the same customer at once.

Assigning is a conditional UPDATE: with `expected_key_id` two agents claiming the same conversation cannot
both win. Presence is a heartbeat row per (conversation, key) that the console renews while the page is open;
a viewer whose heartbeat is older than `PRESENCE_TTL` is gone. Both live in the database, so every replica
sees them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from service.auth.models import Principal, Role
from service.db.models import ApiKey, Conversation, ConversationViewer
from service.db.rows import changed
from service.errors import Conflict, InvalidInput
from service.workflow.context import WorkflowContext
from service.workflow.mapping import assignment_read, conversation_or_404, conversation_read
from service.workflow.models import AssignUpdate, ConversationRead, PresenceRead, ViewerRead

PRESENCE_TTL = timedelta(seconds=30)
ASSIGNABLE_ROLES = frozenset({Role.agent.value, Role.admin.value})


def assign(
    ctx: WorkflowContext, conversation_id: int, req: AssignUpdate, principal: Principal
) -> ConversationRead:
    now = ctx.clock.now()
    with ctx.db.session() as s:
        conv = conversation_or_404(s, conversation_id)
        name: str | None = None
        if req.agent_key_id is not None:
            key = s.get(ApiKey, req.agent_key_id)
            if key is None or key.revoked_at is not None or key.role not in ASSIGNABLE_ROLES:
                raise InvalidInput(
                    f"{req.agent_key_id!r} is not an active agent key",
                    details={"agent_key_id": req.agent_key_id},
                )
            name = key.name
        stmt = update(Conversation).where(Conversation.id == conversation_id)
        if req.expected_key_id is not None:
            expected = req.expected_key_id or None
            stmt = stmt.where(
                Conversation.assigned_key_id.is_(None)
                if expected is None
                else Conversation.assigned_key_id == expected
            )
        won = changed(
            s,
            stmt.values(
                assigned_to=name,
                assigned_key_id=req.agent_key_id,
                assigned_at=now if req.agent_key_id else None,
                updated_at=now,
            ),
        )
        s.refresh(conv)
        if won != 1:
            holder = conv.assigned_to or "nobody"
            raise Conflict(
                f"conversation {conversation_id} is assigned to {holder} now",
                details={"assigned_to": conv.assigned_to, "assigned_key_id": conv.assigned_key_id},
            )
        ctx.events.emit(
            s,
            "conversation.assigned",
            {
                "conversation_id": conv.id,
                "agent": name,
                "agent_key_id": req.agent_key_id,
                "by": principal.name,
            },
            now=now,
            conversation_id=conv.id,
        )
        return conversation_read(s, ctx.sla, conv, now)


def touch_presence(ctx: WorkflowContext, conversation_id: int, principal: Principal) -> PresenceRead:
    """Record that `principal` has the conversation open now; returns everyone who has."""
    now = ctx.clock.now()
    with ctx.db.session() as s:
        conversation_or_404(s, conversation_id)
        renewed = changed(
            s,
            update(ConversationViewer)
            .where(
                ConversationViewer.conversation_id == conversation_id,
                ConversationViewer.key_id == principal.key_id,
            )
            .values(seen_at=now, name=principal.name),
        )
        if renewed == 0:
            try:
                with s.begin_nested():
                    s.add(
                        ConversationViewer(
                            conversation_id=conversation_id,
                            key_id=principal.key_id,
                            name=principal.name,
                            seen_at=now,
                        )
                    )
            except IntegrityError:  # the same agent's other tab inserted it first: renew that row
                s.execute(
                    update(ConversationViewer)
                    .where(
                        ConversationViewer.conversation_id == conversation_id,
                        ConversationViewer.key_id == principal.key_id,
                    )
                    .values(seen_at=now)
                )
    return presence(ctx, conversation_id)


def leave(ctx: WorkflowContext, conversation_id: int, principal: Principal) -> None:
    with ctx.db.session() as s:
        s.execute(
            delete(ConversationViewer).where(
                ConversationViewer.conversation_id == conversation_id,
                ConversationViewer.key_id == principal.key_id,
            )
        )


def presence(ctx: WorkflowContext, conversation_id: int) -> PresenceRead:
    now = ctx.clock.now()
    with ctx.db.session() as s:
        conv = conversation_or_404(s, conversation_id)
        rows = s.scalars(
            select(ConversationViewer)
            .where(
                ConversationViewer.conversation_id == conversation_id,
                ConversationViewer.seen_at > now - PRESENCE_TTL,
            )
            .order_by(ConversationViewer.seen_at.desc())
        )
        return PresenceRead(
            conversation_id=conversation_id,
            viewers=[ViewerRead(agent=r.name, key_id=r.key_id, seen_at=r.seen_at) for r in rows],
            assignment=assignment_read(conv),
        )


def assignable_agents(ctx: WorkflowContext) -> list[tuple[str, str]]:
    """(key id, name) of the active keys a conversation may be assigned to."""
    with ctx.db.session() as s:
        rows = s.execute(
            select(ApiKey.id, ApiKey.name)
            .where(ApiKey.revoked_at.is_(None), ApiKey.role.in_(ASSIGNABLE_ROLES))
            .order_by(ApiKey.name, ApiKey.id)
        ).all()
    return [(r[0], r[1]) for r in rows]
