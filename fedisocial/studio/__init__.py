"""The AI image studio: generation jobs and publishing (``generation``), media checks and storage
(``media``) and the image model providers (``ai``)."""
