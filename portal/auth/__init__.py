"""Auth families: each way of connecting an account behind one interface (family.py),
placed by auth type in the registry (registry.py). See docs/architecture.md."""
