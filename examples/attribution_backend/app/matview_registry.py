"""The materialized views the application refreshes (checked by ZG-3)."""

MATERIALIZED_VIEWS = [
    "mv_allocation_summary",
    "mv_channel_performance",
    "mv_daily_revenue_summary",
]
