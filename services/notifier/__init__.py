"""Notifier: WebSocket fan-out of leaderboard changes and the live page."""
