"""The chat path between wire protocols and the engine: neutral request/events (types.py), model formats."""
