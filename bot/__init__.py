"""Siyu's voice on WeChat: API clients, token sharing, rate limits and the sandbox."""
