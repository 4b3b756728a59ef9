"""SQLAlchemy models of the tables the migrations create (what the application maps).

The migrations are the source of the schema; these models must describe the same
tables, columns, types, nullability, keys and indexes (zerodrift's ZG-8 compares them
with a database migrated to head). Row-level security, triggers and materialized views
live in the migrations only.
"""

import uuid
from datetime import datetime

from sqlalchemy import (BigInteger, CheckConstraint, DateTime, ForeignKey, Identity, Index, Integer, Text,
                        UniqueConstraint, text)
from sqlalchemy.dialects.postgresql import ENUM, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


ChannelKind = ENUM("direct", "organic", "paid", "email", "referral", name="channel_kind", create_type=False)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))
    name: Mapped[str] = mapped_column(Text, nullable=False)
    api_key_hash: Mapped[str] = mapped_column(Text, nullable=False)
    notification_email: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))


class AttributionEvent(Base):
    __tablename__ = "attribution_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_attribution_events_tenant_idempotency"),
        Index("idx_attribution_events_tenant_occurred", "tenant_id", "occurred_at"),
        CheckConstraint("revenue_cents >= 0", name="attribution_events_revenue_cents_check"),
        {"comment": "Raw attribution events; written by ingestion only"},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))
    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id", ondelete="CASCADE"),
                                                 nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    session_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    revenue_cents: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    raw_payload: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    channel: Mapped[str] = mapped_column(ChannelKind, nullable=False, server_default=text("'direct'::channel_kind"))
    idempotency_key: Mapped[str] = mapped_column(Text, nullable=False, comment="tenant-scoped dedup key")
    event_type: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'purchase'::text"))
    event_timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    conversion_value_cents: Mapped[int] = mapped_column(Integer, nullable=False)


class AttributionAllocation(Base):
    __tablename__ = "attribution_allocations"
    __table_args__ = (
        CheckConstraint("allocated_cents >= 0", name="ck_allocations_nonnegative"),
        {"comment": "Revenue allocated per channel and model version"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id", ondelete="CASCADE"),
                                                 nullable=False)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True),
                                                ForeignKey("attribution_events.id", ondelete="CASCADE"), nullable=False)
    channel: Mapped[str] = mapped_column(Text, nullable=False)
    allocated_cents: Mapped[int] = mapped_column(Integer, nullable=False)
    model_version: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'v1'::text"))


metadata = Base.metadata
