"""Known framework behaviour: detected facts of a run, the condition language, the known bugs and refusals."""
