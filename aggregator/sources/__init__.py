"""Where articles come from, apart from HTTP: folders of posts, and each source's schedule.

posts.py     a folder of Jekyll-style posts read as documents
schedule.py  when a source is due, its backoff after failures and its health: pure
             functions of its state and the clock
"""
