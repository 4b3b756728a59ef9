"""Celery app with the beat schedule of the attribution backend."""

import os

from celery import Celery
from celery.schedules import crontab

celery_app = Celery(
    "attribution",
    broker=os.environ.get("CELERY_BROKER_URL", "memory://"),
    include=["app.tasks"],
)
celery_app.conf.update(
    timezone="UTC",
    beat_schedule={
        "refresh-matviews-every-5-min": {
            "task": "app.tasks.refresh_all_matviews",
            "schedule": 300.0,
        },
        "pii-audit-scanner": {
            "task": "app.tasks.scan_for_pii_contamination",
            "schedule": crontab(minute=0, hour=4),
        },
        "enforce-data-retention": {
            "task": "app.tasks.enforce_data_retention",
            "schedule": crontab(minute=0, hour=3),
        },
    },
)
