"""AI helpers: image providers (:mod:`fedisocial.studio.ai.images`)."""
