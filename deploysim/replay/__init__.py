"""Replaying conversations against a candidate: HTTP client, cache, pacing, agent loop, tool simulator."""
