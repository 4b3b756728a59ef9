-- Seed applied at the pre-idempotency revision (0004_merge_branches) by ZG-2.
INSERT INTO tenants (id, name, api_key_hash, notification_email)
VALUES ('11111111-1111-1111-1111-111111111111', 'ZG Existing Tenant', 'hash', 'ops@example.com');
INSERT INTO attribution_events (id, tenant_id, occurred_at, session_id, revenue_cents, raw_payload, channel)
VALUES ('33333333-3333-3333-3333-333333333333', '11111111-1111-1111-1111-111111111111',
        '2025-01-01T00:00:00Z', '22222222-2222-2222-2222-222222222222', 12345, '{}', 'paid');
INSERT INTO attribution_allocations (tenant_id, event_id, channel, allocated_cents)
VALUES ('11111111-1111-1111-1111-111111111111', '33333333-3333-3333-3333-333333333333', 'paid', 12345);
