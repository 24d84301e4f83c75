"""AI helpers: image providers (:mod:`fedisocial.ai.images`)."""
