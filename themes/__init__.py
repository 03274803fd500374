"""berth's themes: TOML files shipped here, plus the loader that turns them into Textual themes."""
