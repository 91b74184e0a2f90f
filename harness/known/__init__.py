"""Known framework behaviour: detected facts of a run, the condition language, and the registry of known bugs and refusals."""
