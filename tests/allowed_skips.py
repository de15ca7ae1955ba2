"""Tests that may be skipped, each with the reason. `./course test` fails on any other skip."""

ALLOWED = {
    # Runs only where the engine is the course's own: on a learner's engine the course cannot
    # stop and restart it to show the panels' messages.
    "test_panels_survive_engine_restart": "needs the course's own engine to stop and start",
}
