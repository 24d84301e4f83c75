"""fedisocial: a self-hostable ActivityPub social server with an AI image studio built in."""

__version__ = "0.1.0"
__all__ = ["__version__"]
