"""What local people do and see: accounts, the outbox, feeds (``timeline``), who may read what
(``access``), collections and post text (``content``)."""
