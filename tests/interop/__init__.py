"""Implementations we did not write, driven against a real instance by tests/test_interop.py.

``package.json`` pins the npm package ``activitypub-testing`` (``./test.sh`` installs
it here when npm exists); :mod:`tests.interop.bovine_remote` is a remote actor built
with the ``bovine`` library.
"""
