"""Franka FR3 tasks and their scripted experts."""

TASKS = ()
