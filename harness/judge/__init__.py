"""One (case, engine, check) item: the reference per case, the engine's run, the judgement, findings, the outcome."""
