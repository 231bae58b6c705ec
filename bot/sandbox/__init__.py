"""A local stand-in for Tencent's APIs: same paths, JSON shapes and error codes, its own small state."""
