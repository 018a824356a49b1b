"""Notification delivery: chat services (apprise) and CloudEvents webhooks."""
