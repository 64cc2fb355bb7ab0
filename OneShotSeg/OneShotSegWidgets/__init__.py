"""Qt parts the extension's module widgets share (the Libs stay Qt-free)."""
