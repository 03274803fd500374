"""berth's screens: the main frame, help, and pickers."""
