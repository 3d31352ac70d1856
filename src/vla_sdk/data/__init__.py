"""Demonstration datasets in the LeRobot v3.0 layout: writing (crash-safe), reading, statistics, validation."""
