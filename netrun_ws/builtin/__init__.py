"""The built-in plugins: each uses only the public hookspecs, as a third-party plugin would."""
