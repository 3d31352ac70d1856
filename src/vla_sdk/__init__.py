"""vla-sdk: teach robots new skills with compact vision-language-action policies.

Importing the package has no side effects beyond defining names: nothing is downloaded or written.
"""

__version__ = "0.1.0"
