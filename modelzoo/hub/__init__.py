"""Sharing zoos: merge, mix, version, publish (Hub layout + card) and upload.

- :mod:`~modelzoo.hub.configs`: a zoo's ``datasets`` configs (one per architecture/source).
- :mod:`~modelzoo.hub.stream`: rows of a zoo streamed batch by batch; per-model hashes.
- :mod:`~modelzoo.hub.staging`: write next to the destination, rename into place.
- :mod:`~modelzoo.hub.merge` / :mod:`~modelzoo.hub.mix`: zoos (or recipes) into one zoo.
- :mod:`~modelzoo.hub.versioning`: semantic versions, release checks, ``zoo diff``.
- :mod:`~modelzoo.hub.cards` / :mod:`~modelzoo.hub.publish`: the Hub folder and its card.
- :mod:`~modelzoo.hub.cli`: ``zoo merge|diff|publish``.
"""
