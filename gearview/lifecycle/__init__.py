"""The life of a study in the cache after it arrived: kept, deleted, purged by the retention policy.

No Qt here: the CLI (`rm`, `keep`, `store purge`) and the GUI (Delete, Keep,
the free-space indicator) call the same functions.
"""
