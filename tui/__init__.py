"""berth's faces: the Textual console and the `berth` command line, thin over `backends`."""
