"""The toolkit's version, in its own module: submodules read it without the package."""

__version__ = "0.1.0"
