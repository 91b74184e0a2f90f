"""Property-based fuzzing: configurations drawn by hypothesis, alarms grouped by cause and re-checked in fresh processes."""
