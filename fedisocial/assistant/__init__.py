"""The assistant: an account anyone in the fediverse can mention, and drafting help.

``drafting`` suggests text, hashtags, a content warning and alt text to our own
authors (never posted without them); the mentionable actor, its answers and its
quotas live beside it.
"""
