"""Property-based fuzzing: configurations drawn by hypothesis, alarms grouped by cause and re-checked in fresh
processes.

strategies (what is drawn) -> configs (a drawn entry as a Case, as YAML) -> check (one configuration in every
engine; alarms, their cause and known bugs in alarms, what each engine computed in observe) -> search (the
hypothesis loop, workers) -> recheck (fresh processes, through processes); stats, shards and render hold what a
run saw, its shards' summaries and its text.
"""
