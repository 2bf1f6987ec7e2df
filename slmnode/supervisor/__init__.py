"""Keeping the node up: supervised engines, watchdog and canary, thermal governor, systemd, alerts."""
