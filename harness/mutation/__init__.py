"""Deliberately broken NumPy ports (mutants) and the mutation score of a suite."""
