"""`brie-bench view`: every run in a database, served read-only on 127.0.0.1 behind the judging page's guard.

Pages (all GET, all carrying the printed URL's token): the runs list with
filters, a run's report rendered live, any two runs compared, one run's blinded
comparisons browsed with filters kept in the query string. See docs/viewer.md.
"""
