"""`connect-portal demo`: the whole story on one machine, on embedded defaults."""
