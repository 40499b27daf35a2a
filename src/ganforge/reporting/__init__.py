"""Reading finished runs and summarizing them for ``ganforge-report``."""
