"""The converter scoreboard: every installed engine over the cases and a fuzz budget, by layer kind and dtype."""
