"""The service's Dispatcher on Celery: two tasks, sent by name."""

from __future__ import annotations

from celery import Celery

from verification.service import Dispatcher


class CeleryDispatcher(Dispatcher):
    def __init__(self, celery_app: Celery):
        self.celery = celery_app

    def send_challenge(self, verification_id: str) -> None:
        self.celery.send_task("verification.send_challenge", args=[verification_id])

    def expire_later(self, verification_id: str, countdown: float) -> None:
        self.celery.send_task("verification.expire", args=[verification_id], countdown=countdown)
