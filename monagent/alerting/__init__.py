"""The alert state machine, the notification policy and their configuration."""
