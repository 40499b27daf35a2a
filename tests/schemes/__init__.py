"""A training scheme that lives only in the tests: the contract every scheme implements, shown small."""
