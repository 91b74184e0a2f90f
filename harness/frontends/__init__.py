"""Entry points: the command line, the pytest plugin and its sharding, the report/scoreboard/suite commands, extract."""
