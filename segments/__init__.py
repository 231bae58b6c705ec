"""The segment language, its compilers, materialised membership and auto-tagging."""
