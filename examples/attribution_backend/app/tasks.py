"""Maintenance tasks run by Celery beat."""

from app.celery_app import celery_app
from app.matview_registry import MATERIALIZED_VIEWS
from app.refresh import refresh_view


@celery_app.task(name="app.tasks.refresh_all_matviews")
def refresh_all_matviews() -> dict[str, str]:
    return {name: refresh_view(name) for name in MATERIALIZED_VIEWS}


@celery_app.task(name="app.tasks.scan_for_pii_contamination")
def scan_for_pii_contamination() -> int:
    return 0


@celery_app.task(name="app.tasks.enforce_data_retention")
def enforce_data_retention() -> int:
    return 0
