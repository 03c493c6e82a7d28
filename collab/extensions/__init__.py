"""Features built as extensions, on the public API only (tests/unit/test_extensions_api.py
fails otherwise): what a third party can write, we write the same way.

They import public names (those `collab` exports) from the modules that define them
(`collab.hooks`, `collab.access`, `collab.errors`, ...) rather than from `collab` itself:
`collab/__init__` imports the app, which switches the built-in ones on, so importing the
package from here would be an import cycle.
"""

from .token_auth import TokenAuth, mint_token
from .webhooks import Webhooks, verify

__all__ = ["TokenAuth", "Webhooks", "mint_token", "verify"]
