"""Cases and stacks as a user writes them: the schema, the loaded suite, selection and sharding."""
