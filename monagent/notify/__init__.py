"""Receivers: console, DingTalk, generic webhook, Alertmanager, and the dispatcher that feeds them."""
