"""The built-in plugins. Each uses only the public hookspecs, exactly as a third-party plugin would."""
