"""The lowest layer: configuration errors and validators, registries, budgets, seeding and the environment
record. Every other package may import from here; nothing here imports from them."""
